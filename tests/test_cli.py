"""The command line: load, migrate, --help."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from fhirhub import cli
from fhirhub.cli import app
from fhirhub.config import get_settings
from fhirhub.storage.engine import make_engine
from tests.conftest import SOURCES_ONLY

runner = CliRunner()
NIK = "https://fhir.kemkes.go.id/id/nik"


@pytest.fixture
def use_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(cli.console, "width", 1000)  # no wrapping, whatever the terminal
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def _count(url: str, res_type: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(*) FROM resources WHERE res_type = :t AND NOT deleted "
                f"AND {SOURCES_ONLY}"
            ),
            {"t": res_type},
        ).scalar_one()
    engine.dispose()
    return int(n)


def test_help_everywhere() -> None:
    for args in ([], ["serve"], ["migrate"], ["load"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_load_ndjson_reports_stored_and_rejected(use_db: str, tmp_path: Path) -> None:
    lines = [
        {"resourceType": "Patient", "identifier": [{"system": NIK, "value": f"74720100{i:08}"}]}
        for i in range(5)
    ]
    lines.append({"resourceType": "Patient", "gender": 42})  # line 6: invalid
    lines.append({"resourceType": "Organization", "id": "pkm-wolio", "name": "PKM Wolio"})
    path = tmp_path / "patients.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n")
    result = runner.invoke(app, ["load", str(path)])
    assert result.exit_code == 1  # something was rejected
    output = " ".join(result.output.split())  # the console wraps long lines
    assert "stored 6, unchanged 0, rejected 1" in output
    assert f"{path}:6: 400 value at Patient.gender" in output
    assert _count(use_db, "Patient") == 5
    again = runner.invoke(app, ["load", str(path)])
    assert "unchanged 1, rejected 1" in again.output  # the Organization by id: no new version


def test_load_transaction_bundle(use_db: str, tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "berat badan"},
                    "subject": {"reference": "urn:uuid:1"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    result = runner.invoke(app, ["load", str(path)])
    assert result.exit_code == 0, result.output
    assert "stored 2, unchanged 0, rejected 0" in result.output
    assert _count(use_db, "Observation") == 1


def test_load_sends_a_puskesmas_bundle_through_the_inbox(use_db: str, tmp_path: Path) -> None:
    from fhirhub.synth import demo_bundles

    reference, *clinics = demo_bundles(persons=40, seed=5)
    (tmp_path / "0-reference.json").write_text(json.dumps(reference))
    (tmp_path / "1-clinic.json").write_text(json.dumps(clinics[0]))
    result = runner.invoke(app, ["load", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert _count(use_db, "Provenance") == 1  # one inbox message, stamped
    engine = make_engine(use_db)
    with engine.connect() as conn:
        inbox = conn.execute(text("SELECT status, resources FROM inbox_messages")).all()
    engine.dispose()
    assert [s for s, _ in inbox] == ["processed"]
    patients = _count(use_db, "Patient")
    again = runner.invoke(app, ["load", str(tmp_path)])
    assert again.exit_code == 0, again.output
    first = result.output.split("stored ")[-1].split(",")[0]  # "stored N, unchanged 0, ..."
    assert f"stored 0, unchanged {first}, rejected 0" in again.output
    assert _count(use_db, "Patient") == patients and _count(use_db, "Provenance") == 1


# One-line errors, --version, help texts, workers (issue 9, items 4 and 6)


def _commands(group: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the click tree under ``group``."""
    out = [path]
    for name, command in getattr(group, "commands", {}).items():
        out.extend(_commands(command, (*path, name)))
    return out


def _all_commands() -> list[tuple[str, ...]]:
    import typer

    return _commands(typer.main.get_command(app))


def test_every_command_has_help_that_does_not_break_mid_phrase() -> None:
    """At 80 columns, a line of help text is never left short while the next line's first
    word would have fit on it (the docstring's own line breaks used to survive)."""
    commands = _all_commands()
    assert ("inbox", "show") in commands and ("synth",) in commands
    for path in commands:
        result = CliRunner().invoke(
            app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80
        )
        assert result.exit_code == 0, (path, result.output)
        lines = [line.rstrip() for line in result.output.splitlines()]
        for this, following in itertools.pairwise(lines):
            # running text continued on the next line starts at the same column
            if not this.strip(" │") or not following.strip(" │"):
                continue
            if _indent(this) != _indent(following) or "  " in following.strip(" │"):
                continue  # a new row (of an option, a command), a default, another column
            first_word = following.strip(" │").split()[0]
            if first_word.startswith("["):
                continue  # typer's [default: ...], [required] start a line of their own
            room = 78 if this.endswith("│") else 80
            fits = len(this.rstrip(" │")) + 1 + len(first_word) < room
            assert not fits, (path, this, following)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip("│ "))


def test_version() -> None:
    from fhirhub import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"fhirhub {__version__}"


def test_a_missing_inbox_message_is_one_line(use_db: str) -> None:
    result = runner.invoke(app, ["inbox", "show", "999"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "fhirhub: No inbox message 999"
    assert result.stdout == ""


def test_an_unknown_status_is_a_usage_error_in_one_line(use_db: str) -> None:
    for args in (["inbox", "list", "--status", "bogus"], ["inbox", "replay", "--status", "x"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert "'bogus'" in lines[0] or "'x'" in lines[0]
        assert "received" in lines[0] and "--help" in lines[0]


def test_usage_errors_of_every_kind_are_one_line() -> None:
    for args in (["nosuch"], ["load"], ["serve", "--port", "x"], ["inbox", "show", "abc"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert "Traceback" not in result.output


def test_replaying_nothing_is_a_usage_error(use_db: str) -> None:
    result = runner.invoke(app, ["inbox", "replay"])
    assert result.exit_code == 2
    assert "name message ids or --status" in result.stderr


def test_default_workers() -> None:
    from fhirhub.cli import default_workers

    assert default_workers("sqlite:///x.sqlite3", 8) == 1
    assert default_workers("postgresql://u@h/db", 1) == 3
    assert default_workers("postgresql://u@h/db", 2) == 5
    assert default_workers("postgresql://u@h/db", 64) == 8  # each worker keeps a pool
    assert default_workers("postgresql+psycopg://u@h/db", None) == 3


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_serve_prints_its_workers_and_that_auth_is_off(
    use_db: str, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    import uvicorn

    from fhirhub.cli import default_workers

    started: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.update(kw))
    result = runner.invoke(app, ["serve", "--host", host])
    assert result.exit_code == 0, result.output
    expected = default_workers(use_db, __import__("os").cpu_count())
    assert started["workers"] == expected
    assert f"({expected} worker" in result.stderr
    assert "authorisation is off (FHIRHUB_AUTH=off)" in result.stderr


def test_serve_refuses_auth_off_beyond_loopback(
    use_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("started"))
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert result.stderr.startswith("fhirhub: refusing to listen on 0.0.0.0 with FHIRHUB_AUTH=off")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (None, "FHIRHUB_AUTH_SIGNING_KEYS is not set; there is no default key"),
        ('{"keys": []}', "FHIRHUB_AUTH_SIGNING_KEYS holds no key"),
        ("/nonexistent/keys.json", "cannot read the key file"),
    ],
)
def test_serve_with_auth_on_refuses_missing_keys(
    use_db: str, monkeypatch: pytest.MonkeyPatch, keys: str | None, expected: str
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("started"))
    monkeypatch.setenv("FHIRHUB_AUTH", "on")
    if keys is not None:
        monkeypatch.setenv("FHIRHUB_AUTH_SIGNING_KEYS", keys)
    get_settings.cache_clear()
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert result.stderr.startswith("fhirhub: FHIRHUB_AUTH=on, but ")
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_serve_with_auth_on_and_keys_starts_on_any_address(
    use_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from joserfc import jwk

    started: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.update(kw))
    key = jwk.generate_key("EC", "P-256", parameters={"kid": "k1"})
    monkeypatch.setenv("FHIRHUB_AUTH", "on")
    monkeypatch.setenv(
        "FHIRHUB_AUTH_SIGNING_KEYS", json.dumps({"keys": [key.as_dict(private=True)]})
    )
    get_settings.cache_clear()
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert started["host"] == "0.0.0.0" and "authorisation is on" in result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("garbage", "fhirhub: FHIRHUB_DATABASE_URL: Could not parse"),
        ("mysql://u@h/db", "fhirhub: fhirhub runs on PostgreSQL or SQLite, not mysql"),
    ],
)
def test_a_database_url_fhirhub_cannot_use_is_one_line(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        for args in (["migrate"], ["inbox", "list"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 1, result.output
            assert result.stderr.strip().splitlines() == [result.stderr.strip()]
            assert result.stderr.startswith(expected), result.stderr
    finally:
        get_settings.cache_clear()


def test_a_setting_of_the_wrong_kind_is_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "FHIRHUB_AUTO_MIGRATE": "maybe"}
    done = subprocess.run(
        [sys.executable, "-m", "fhirhub.cli", "inbox", "list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "fhirhub: FHIRHUB_AUTO_MIGRATE: Input should be a valid boolean, unable to interpret "
        "input (got 'maybe')"
    )
    assert not list(tmp_path.iterdir())  # nothing created in the working folder
