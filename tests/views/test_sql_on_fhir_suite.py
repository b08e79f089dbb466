"""The official SQL on FHIR v2 test suite, run by the in-memory runner (fhirhub.views.run).

Every case of every file in tests/views/sql_on_fhir_v2/ (vendored by
scripts/vendor_sql_on_fhir_tests.py): a ``shareable`` case must pass; an ``experimental`` one is
an xfail(strict=False), so the summary counts how many pass (XPASS) without failing the run.
Rows are compared as the suite says: as a multiset (order does not matter), and the columns in
order when the case gives ``expectColumns``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhirhub.views.definition import parse_view
from fhirhub.views.errors import ViewError
from fhirhub.views.run import run_view

SUITE = Path(__file__).parent / "sql_on_fhir_v2"


def _cases() -> list[Any]:
    params = []
    for path in sorted(SUITE.glob("*.json")):
        if path.name == "tests.schema.json":
            continue
        suite = json.loads(path.read_text(encoding="utf-8"))
        for case in suite["tests"]:
            tags = set(case.get("tags", [])) | set(suite.get("tags", []))
            marks = []
            if "experimental" in case.get("tags", []):
                marks.append(pytest.mark.xfail(reason="experimental in the suite", strict=False))
            params.append(
                pytest.param(
                    suite["resources"],
                    case,
                    marks=marks,
                    id=f"{path.stem}:{case['title']}",
                )
            )
            assert tags, f"{path.name}: {case['title']} has no tag"
    return params


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


@pytest.mark.parametrize(("resources", "case"), _cases())
def test_case(resources: list[dict[str, Any]], case: dict[str, Any]) -> None:
    if case.get("expectError"):
        with pytest.raises(ViewError) as caught:
            list(run_view(parse_view(case["view"]), resources))
        # the error says where in the ViewDefinition (it becomes the OperationOutcome's expression)
        assert caught.value.issues[0].expression[0].startswith("ViewDefinition")
        return
    view = parse_view(case["view"])
    rows = list(run_view(view, resources))
    if "expectColumns" in case:
        assert list(view.column_names) == case["expectColumns"]
        assert all(list(row) == case["expectColumns"] for row in rows)
    if "expectCount" in case:
        assert len(rows) == case["expectCount"]
    if "expect" in case:
        assert sorted(map(_canonical, rows)) == sorted(map(_canonical, case["expect"]))


def test_the_suite_is_all_there() -> None:
    """The vendored copy holds the whole suite (22 files, 134 cases) and its origin note."""
    files = [p for p in SUITE.glob("*.json") if p.name != "tests.schema.json"]
    assert len(files) == 22
    assert len(_cases()) == 134
    assert "MIT" in (SUITE / "SOURCE.md").read_text(encoding="utf-8")
