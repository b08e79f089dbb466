"""A facility reads only its facility's records (docs/auth.md, "What a facility reads"), through
every route that returns records: read, vread, search (its count and pages), _include,
_revinclude, chains, _has, history, $everything and a batch's GET entries; and what it writes
is stamped as its own. Two facilities' data, each route allowed and denied, SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from auth_app import FHIR_JSON, AuthClient

from fhirhub.auth import binding
from fhirhub.auth.roles import Role
from fhirhub.ingest import provenance

ORG_A, ORG_B = "Organization/org-pkm01", "Organization/org-pkm02"
SOURCE_A = binding.facility_source("puskesmas", ORG_A)


def _patient(pid: str, family: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family}], **more}


def _obs(oid: str, subject: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
        **more,
    }


def _enc(eid: str, subject: str, org: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": subject},
        "serviceProvider": {"reference": org},
    }


#: What each facility may read, by id (the directory aside).
SEED: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "org-pkm01", "name": "Puskesmas A"},
    {"resourceType": "Organization", "id": "org-pkm02", "name": "Puskesmas B"},
    {"resourceType": "Practitioner", "id": "pr1"},
    _patient("pa", "Alpha", managingOrganization={"reference": ORG_A}),
    _patient("pl", "Lima", meta={"source": SOURCE_A}),  # A's through what it sent
    _patient("pb", "Secret", managingOrganization={"reference": ORG_B}),
    _enc("ea", "Patient/pa", ORG_A),
    _enc("eb", "Patient/pb", ORG_B),
    _obs("oa", "Patient/pa"),  # A's patient's record
    _obs("ox", "Patient/pa", performer=[{"reference": ORG_B}]),  # B's lab, about A's patient
    _obs("oy", "Patient/pb", performer=[{"reference": ORG_A}]),  # A's, about B's patient
    _obs("ob", "Patient/pb", performer=[{"reference": "Practitioner/pr1"}]),
    {
        "resourceType": "Condition",
        "id": "cb",
        "subject": {"reference": "Patient/pb"},
        "encounter": {"reference": "Encounter/eb"},
        "code": {"text": "private"},
    },
]
READS_A = {"pa", "pl", "ea", "oa", "ox", "oy"}
READS_B = {"pb", "eb", "ox", "ob", "cb", "oy"}  # oy: about its patient


@pytest.fixture
def two(auth_app: AuthClient) -> dict[str, dict[str, str]]:
    sync = auth_app.headers(auth_app.as_role(Role.sync), **FHIR_JSON)
    for resource in SEED:
        url = f"/fhir/{resource['resourceType']}/{resource['id']}"
        assert auth_app.http.put(url, json=resource, headers=sync).status_code == 201
    out = {"sync": sync}
    for name, org in (("a", ORG_A), ("b", ORG_B)):
        secret = auth_app.register(
            f"fac-{name}", Role.facility, organization=org, adapter="puskesmas"
        )
        assert secret
        out[name] = auth_app.headers(auth_app.token(f"fac-{name}", secret), **FHIR_JSON)
    return out


def _ids(bundle: dict[str, Any], mode: str | None = None) -> set[str]:
    return {
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] != "OperationOutcome"
        and (mode is None or e["search"]["mode"] == mode)
    }


def _get(app: AuthClient, url: str, headers: dict[str, str], status: int = 200) -> Any:
    answer = app.http.get(url, headers=headers)
    assert answer.status_code == status, (url, answer.text)
    if status == 403:
        assert answer.json()["issue"][0]["code"] == "forbidden"
    return answer.json()


def _all_pages(app: AuthClient, url: str, headers: dict[str, str]) -> list[str]:
    seen: list[str] = []
    while url:
        bundle = _get(app, url, headers)
        seen.extend(e["resource"]["id"] for e in bundle.get("entry", []))
        url = next((x["url"] for x in bundle["link"] if x["relation"] == "next"), "")
        url = url.replace("http://testserver", "")
    return seen


# --- read, vread, history -------------------------------------------------------------------


@pytest.mark.parametrize("who", ["a", "b"])
def test_read_and_vread_only_its_records(
    auth_app: AuthClient, two: dict[str, dict[str, str]], who: str
) -> None:
    allowed = READS_A if who == "a" else READS_B
    for resource in SEED:
        rt, rid = resource["resourceType"], resource["id"]
        expected = 200 if rt in binding.DIRECTORY or rid in allowed else 403
        _get(auth_app, f"/fhir/{rt}/{rid}", two[who], expected)
        _get(auth_app, f"/fhir/{rt}/{rid}/_history/1", two[who], expected)
        _get(auth_app, f"/fhir/{rt}/{rid}/_history", two[who], expected)
    _get(auth_app, "/fhir/Patient/nobody", two[who], 404)


def test_type_history_holds_only_its_records(
    auth_app: AuthClient, two: dict[str, dict[str, str]]
) -> None:
    bundle = _get(auth_app, "/fhir/Patient/_history?_total=accurate", two["a"])
    assert {e["resource"]["id"] for e in bundle["entry"]} == {"pa", "pl"}
    assert bundle["total"] == 2
    bundle = _get(auth_app, "/fhir/Observation/_history", two["b"])
    assert {e["resource"]["id"] for e in bundle["entry"]} == {"ox", "ob", "oy"}


# --- search --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "res_type", "expected"),
    [
        ("a", "Patient", {"pa", "pl"}),
        ("b", "Patient", {"pb"}),
        ("a", "Encounter", {"ea"}),
        ("b", "Encounter", {"eb"}),
        ("a", "Observation", {"oa", "ox", "oy"}),
        ("b", "Observation", {"ox", "ob", "oy"}),
        ("a", "Condition", set()),
        ("a", "Organization", {"org-pkm01", "org-pkm02"}),  # the directory
    ],
)
def test_search_counts_and_pages_hold_only_its_records(
    auth_app: AuthClient,
    two: dict[str, dict[str, str]],
    who: str,
    res_type: str,
    expected: set[str],
) -> None:
    bundle = _get(auth_app, f"/fhir/{res_type}?_total=accurate", two[who])
    assert _ids(bundle) == expected
    assert bundle["total"] == len(expected)
    counted = _get(auth_app, f"/fhir/{res_type}?_summary=count", two[who])
    assert counted["total"] == len(expected)
    paged = _all_pages(auth_app, f"/fhir/{res_type}?_count=1", two[who])
    assert sorted(paged) == sorted(expected)
    posted = auth_app.http.post(
        f"/fhir/{res_type}/_search",
        content="_total=accurate",
        headers={**two[who], "content-type": "application/x-www-form-urlencoded"},
    )
    assert _ids(posted.json()) == expected


def test_a_search_by_id_or_compartment_finds_nothing_of_another(
    auth_app: AuthClient, two: dict[str, dict[str, str]]
) -> None:
    assert _ids(_get(auth_app, "/fhir/Patient?_id=pb", two["a"])) == set()
    bundle = _get(auth_app, "/fhir?_type=Patient,Encounter&_total=accurate", two["a"])
    assert _ids(bundle) == {"pa", "pl", "ea"} and bundle["total"] == 3
    assert _ids(_get(auth_app, "/fhir/Encounter?subject=Patient/pb", two["a"])) == set()
    assert _ids(_get(auth_app, "/fhir/Patient/pb/Observation", two["a"])) == {"oy"}
    assert _ids(_get(auth_app, "/fhir/Patient/pa/Observation", two["a"])) == {"oa", "ox"}
    url = f"/fhir/Encounter?service-provider={ORG_B}"
    assert _ids(_get(auth_app, url, two["a"])) == set()


def test_include_and_revinclude_return_only_what_it_may_read(
    auth_app: AuthClient, two: dict[str, dict[str, str]]
) -> None:
    url = "/fhir/Observation?_include=Observation:subject:Patient"
    bundle = _get(auth_app, url, two["a"])
    assert _ids(bundle, "match") == {"oa", "ox", "oy"}
    assert _ids(bundle, "include") == {"pa"}  # not pb, which oy refers to
    bundle = _get(auth_app, "/fhir/Patient?_revinclude=Observation:subject", two["a"])
    assert _ids(bundle, "include") == {"oa", "ox"}
    bundle = _get(auth_app, "/fhir/Patient?_revinclude=Observation:subject", two["b"])
    assert _ids(bundle, "include") == {"ob", "oy"}
    # pr1 is in the directory; the Observation it performed is about B's patient
    url = "/fhir/Practitioner?_revinclude=Observation:performer"
    assert _ids(_get(auth_app, url, two["a"]), "include") == set()
    assert _ids(_get(auth_app, url, two["b"]), "include") == {"ob"}
    bundle = _get(
        auth_app, "/fhir/Encounter?_revinclude=Condition:encounter&_total=accurate", two["b"]
    )
    assert _ids(bundle) == {"eb", "cb"}
    assert bundle["total"] == 1
    url = "/fhir/Observation?_include=Observation:performer:Practitioner&_id=ob"
    assert _ids(_get(auth_app, url, two["a"])) == set()


def test_chains_and_has_do_not_look_at_what_it_may_not_read(
    auth_app: AuthClient, two: dict[str, dict[str, str]]
) -> None:
    # oy is A's, but its subject pb is not: A cannot learn pb's name through a chain
    assert _ids(_get(auth_app, "/fhir/Observation?subject:Patient.name=Secret", two["a"])) == set()
    assert _ids(_get(auth_app, "/fhir/Observation?subject:Patient.name=Alpha", two["a"])) == {
        "oa",
        "ox",
    }
    assert _ids(_get(auth_app, "/fhir/Observation?subject:Patient.name=Secret", two["b"])) == {
        "ob",
        "oy",
    }
    # pr1 is in the directory; the only Observation it performed is about B's patient
    url = "/fhir/Practitioner?_has:Observation:performer:subject=Patient/pb"
    assert _ids(_get(auth_app, url, two["a"])) == set()
    assert _ids(_get(auth_app, url, two["b"])) == {"pr1"}
    url = f"/fhir/Patient?_has:Observation:subject:performer={ORG_B}"
    assert _ids(_get(auth_app, url, two["a"])) == {"pa"}


# --- $everything and Bundles -----------------------------------------------------------------


def test_everything_of_its_patient_holds_only_what_it_may_read(
    auth_app: AuthClient, two: dict[str, dict[str, str]]
) -> None:
    _get(auth_app, "/fhir/Patient/pb/$everything", two["a"], 403)
    _get(auth_app, "/fhir/Patient/nobody/$everything", two["a"], 404)
    bundle = _get(auth_app, "/fhir/Patient/pa/$everything", two["a"])
    assert _ids(bundle, "match") == {"pa", "ea", "oa", "ox"}
    assert _ids(bundle, "include") <= {"org-pkm01", "org-pkm02", "pr1"}
    assert bundle["total"] == 4
    paged = _all_pages(auth_app, "/fhir/Patient/pa/$everything?_count=2", two["a"])
    assert {"pa", "ea", "oa", "ox"} <= set(paged) and not {"pb", "oy", "ob"} & set(paged)
    bundle = _get(auth_app, "/fhir/Patient/pb/$everything", two["b"])
    assert _ids(bundle, "match") == {"pb", "eb", "ob", "cb", "oy"}


def test_a_bundle_of_get_entries_reads_nothing_of_another(
    auth_app: AuthClient, two: dict[str, dict[str, str]]
) -> None:
    """A facility's Bundles go through its source adapter, which reads nothing for a GET
    entry; a Bundle's GET entries read with the same bounds anyway (``_bundle_get``)."""
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": url}}
            for url in ("Patient/pb", "Patient/pb/_history/1", "Patient?_id=pa,pb")
        ],
    }
    answer = auth_app.http.post("/fhir", json=batch, headers=two["a"])
    assert "Secret" not in answer.text and '"id":"pb"' not in answer.text.replace(" ", "")


def test_bundle_get_entries_are_bounded(two: dict[str, dict[str, str]], db_url: str) -> None:
    from fhirhub.api.fhir_routes import _bundle_get
    from fhirhub.config import Settings
    from fhirhub.storage.engine import make_engine
    from fhirhub.storage.repository import ResourceRepository

    access = binding.reads_of(ORG_A, "puskesmas")
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            repo = ResourceRepository(conn)
            settings = Settings(database_url=db_url)
            got = [
                _bundle_get(repo, url, "http://x/fhir", settings, access)
                for url in (
                    "Patient/pa",
                    "Patient/pb",
                    "Patient/pb/_history/1",
                    "Patient?_id=pa,pb",
                )
            ]
    finally:
        engine.dispose()
    assert [status for status, _ in got] == [200, 403, 403, 200]
    assert _ids(got[3][1]) == {"pa"}


# --- writes ----------------------------------------------------------------------------------


def test_it_changes_only_its_own_records(
    auth_app: AuthClient, two: dict[str, dict[str, str]]
) -> None:
    http = auth_app.http
    # ob names no Organization, but it is B's patient's record: not A's to change
    for answer in (
        http.put("/fhir/Observation/ob", json=_obs("ob", "Patient/pb"), headers=two["a"]),
        http.delete("/fhir/Observation/ob", headers=two["a"]),
        # reachable (its patient's record) is not its own
        http.delete("/fhir/Observation/oa", headers=two["a"]),
    ):
        assert answer.status_code == 403, answer.text
    # a conditional update matches only what it may read: a new Patient, pb untouched
    created = http.put(
        "/fhir/Patient?family=Secret", json=_patient("p-new", "Secret"), headers=two["a"]
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "p-new"
    assert _get(auth_app, "/fhir/Patient/pb", two["sync"])["meta"]["versionId"] == "1"
    assert http.delete("/fhir/Patient/pa", headers=two["a"]).status_code == 204


def test_its_writes_are_stamped_with_its_organization(
    auth_app: AuthClient, two: dict[str, dict[str, str]]
) -> None:
    http = auth_app.http
    sent: list[dict[str, Any]] = [
        {"resourceType": "Patient", "meta": {"source": "http://elsewhere"}},
        {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}},
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": {"text": "BCG"},
            "patient": {"reference": "Patient/pa"},
            "occurrenceDateTime": "2024-01-01",
        },
    ]
    stored = []
    for resource in sent:
        answer = http.post(f"/fhir/{resource['resourceType']}", json=resource, headers=two["a"])
        assert answer.status_code == 201, answer.text
        stored.append(answer.json())
    assert all(r["meta"]["source"] == SOURCE_A for r in stored)
    patient, encounter, observation, immunization = stored
    assert patient["managingOrganization"] == {"reference": ORG_A}
    assert encounter["serviceProvider"] == {"reference": ORG_A}
    assert observation["performer"] == [{"reference": ORG_A}]
    assert immunization["performer"] == [{"actor": {"reference": ORG_A}}]
    # a slot already filled is kept; a patch and a transaction's entries are stamped too
    own = {**sent[2], "performer": [{"reference": "Practitioner/pr1"}]}
    kept = http.post("/fhir/Observation", json=own, headers=two["a"]).json()
    assert kept["performer"] == [{"reference": "Practitioner/pr1"}]
    patch = [{"op": "replace", "path": "/meta/source", "value": "http://elsewhere"}]
    patched = http.patch(
        f"/fhir/Observation/{kept['id']}",
        json=patch,
        headers={**two["a"], "content-type": "application/json-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["meta"]["source"] == SOURCE_A
    # what it wrote is its own: it reads it, the other facility does not
    for r in [*stored, kept]:
        _get(auth_app, f"/fhir/{r['resourceType']}/{r['id']}", two["a"])
        _get(auth_app, f"/fhir/{r['resourceType']}/{r['id']}", two["b"], 403)


def test_stamp_sets_only_empty_natural_slots() -> None:
    obs = {"resourceType": "Observation", "performer": [{"reference": "Practitioner/x"}]}
    assert binding.stamp(obs, ORG_A, SOURCE_A)["performer"] == obs["performer"]
    condition = binding.stamp({"resourceType": "Condition"}, ORG_A, SOURCE_A)
    assert condition == {"resourceType": "Condition", "meta": {"source": SOURCE_A}}
    assert binding.SOURCE_BASE == provenance.SOURCE_BASE


def test_its_bundles_through_its_adapter_are_stamped_and_its_own(
    auth_app: AuthClient, two: dict[str, dict[str, str]]
) -> None:
    from ingest_factories import city, facility_of, per_patient

    reference, bundles = city()
    answer = auth_app.http.post("/fhir", json=reference, headers=two["sync"])
    assert answer.status_code == 200, answer.text
    mine = per_patient(next(b for b in bundles if facility_of(b) == "PKM01"), 1)[0]
    answer = auth_app.http.post("/fhir", json=mine, headers=two["a"])
    assert answer.status_code == 200, answer.text
    locations = [e["response"]["location"] for e in answer.json()["entry"]]
    patient = next(x for x in locations if x.startswith("Patient/"))
    stored = _get(auth_app, f"/fhir/{patient.split('/_history')[0]}", two["a"])
    assert stored["meta"]["source"] == SOURCE_A
    assert stored["managingOrganization"] == {"reference": ORG_A}
    _get(auth_app, f"/fhir/{patient.split('/_history')[0]}", two["b"], 403)
    for x in locations:
        _get(auth_app, f"/fhir/{x.split('/_history')[0]}", two["a"])


def test_match_finds_only_patients_it_may_read(
    auth_app: AuthClient, two: dict[str, dict[str, str]]
) -> None:
    from fhirhub.model import systems

    person = {
        "resourceType": "Patient",
        "identifier": [{"system": systems.NIK, "value": "7472014501900001"}],
        "name": [{"use": "official", "text": "Wa Ode Sitti", "family": "Wa Ode Sitti"}],
        "gender": "female",
        "birthDate": "1990-01-05",
    }
    theirs = {**person, "id": "pm", "managingOrganization": {"reference": ORG_B}}
    answer = auth_app.http.put("/fhir/Patient/pm", json=theirs, headers=two["sync"])
    assert answer.status_code == 201, answer.text
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": person}]}
    for who, expected in (("a", set()), ("b", {"pm"}), ("sync", {"pm"})):
        answer = auth_app.http.post("/fhir/Patient/$match", json=body, headers=two[who])
        assert answer.status_code == 200, answer.text
        assert _ids(answer.json()) == expected, who
        assert answer.json()["total"] == len(expected)
