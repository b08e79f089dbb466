"""The searchset Bundle: paging, _sort, _total, _include/_revinclude, _summary, _elements,
compartments, $everything, $reindex and lenient/strict handling (SQLite and PostgreSQL)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from search_helpers import remove, store
from sqlalchemy import Engine, text

from fhirhub.errors import FhirError
from fhirhub.services.everything import everything
from fhirhub.services.search import reindex, search

BASE = "http://fhir.test/fhir"


def _ids(bundle: dict, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def _link(bundle: dict, rel: str) -> list[tuple[str, str]] | None:
    for link in bundle["link"]:
        if link["relation"] == rel:
            return parse_qsl(urlsplit(link["url"]).query)
    return None


def _city(conn) -> None:  # type: ignore[no-untyped-def]
    store(conn, {"resourceType": "Organization", "id": "pkm1", "name": "Puskesmas Wajo"})
    for i, (family, birth) in enumerate(
        [("Sitti", "1990-01-01"), ("Hasan", "1985-05-05"), ("Amir", "2000-12-31")]
    ):
        store(
            conn,
            {
                "resourceType": "Patient",
                "id": f"p{i}",
                "name": [{"family": family}],
                "birthDate": birth,
                "managingOrganization": {"reference": "Organization/pkm1"},
                "text": {"status": "generated", "div": "<div>x</div>"},
            },
        )
        store(
            conn,
            {
                "resourceType": "Observation",
                "id": f"o{i}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
                "subject": {"reference": f"Patient/p{i}"},
                "effectiveDateTime": f"2024-0{i + 1}-10",
            },
        )


def test_bundle_shape_and_self_link(engine: Engine) -> None:
    with engine.begin() as conn:
        _city(conn)
        b = search(conn, res_type="Patient", params=[("family", "sit")], base_url=BASE)
    assert b["resourceType"] == "Bundle" and b["type"] == "searchset"
    assert b["total"] == 1
    assert b["entry"][0]["fullUrl"] == f"{BASE}/Patient/p0"
    assert _link(b, "self") == [("family", "sit")]
    assert _link(b, "next") is None


def test_paging_next_previous_and_sort(engine: Engine) -> None:
    with engine.begin() as conn:
        _city(conn)
        params = [("_sort", "-birthdate"), ("_count", "2")]
        b1 = search(conn, res_type="Patient", params=params, base_url=BASE)
        assert _ids(b1) == ["p2", "p0"]  # born 2000, 1990, then 1985
        assert "total" not in b1  # not asked for and more than a page
        b2 = search(conn, res_type="Patient", params=_link(b1, "next"), base_url=BASE)
        assert _ids(b2) == ["p1"]
        assert _link(b2, "next") is None
        back = search(conn, res_type="Patient", params=_link(b2, "previous"), base_url=BASE)
        assert _ids(back) == ["p2", "p0"]
        by_name = search(conn, res_type="Patient", params=[("_sort", "family")], base_url=BASE)
        assert _ids(by_name) == ["p2", "p1", "p0"]  # Amir, Hasan, Sitti


def test_total(engine: Engine) -> None:
    with engine.begin() as conn:
        _city(conn)
        b = search(
            conn,
            res_type="Patient",
            params=[("_count", "1"), ("_total", "accurate")],
            base_url=BASE,
        )
        assert b["total"] == 3 and len(b["entry"]) == 1
        b = search(conn, res_type="Patient", params=[("_total", "none")], base_url=BASE)
        assert "total" not in b
        b = search(conn, res_type="Patient", params=[("_summary", "count")], base_url=BASE)
        assert b["total"] == 3 and "entry" not in b


def test_total_estimate(engine: Engine) -> None:
    """_total=estimate: an exact count on SQLite; PostgreSQL's planner estimate (after ANALYZE)
    of the rows the search's conditions select, near the true count and not the table's."""
    with engine.begin() as conn:
        _city(conn)
        for i in range(40):  # many more rows of other types and of non-matching Patients
            store(conn, {"resourceType": "Basic", "id": f"b{i}", "code": {"text": "x"}})
            store(conn, {"resourceType": "Patient", "id": f"x{i}", "birthDate": "1950-01-01"})
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    with engine.connect() as conn:
        patients = search(conn, res_type="Patient", params=[("_total", "estimate")], base_url=BASE)
        born = search(
            conn,
            res_type="Patient",
            params=[("birthdate", "ge1980"), ("_total", "estimate"), ("_count", "1")],
            base_url=BASE,
        )
        accurate = search(
            conn,
            res_type="Patient",
            params=[("birthdate", "ge1980"), ("_total", "accurate")],
            base_url=BASE,
        )
    assert accurate["total"] == 3
    if not postgres:
        assert patients["total"] == 43 and born["total"] == 3
    else:  # an estimate: near the true count (43 and 3), far from the 83 rows of the table
        assert 22 <= patients["total"] <= 86, patients["total"]
        assert 1 <= born["total"] <= 6, born["total"]


def test_include_and_revinclude(engine: Engine) -> None:
    with engine.begin() as conn:
        _city(conn)
        b = search(
            conn,
            res_type="Observation",
            params=[
                ("code", "8302-2"),
                ("subject", "Patient/p1"),
                ("_include", "Observation:subject"),
            ],
            base_url=BASE,
        )
        assert _ids(b) == ["o1"] and _ids(b, "include") == ["p1"]
        b = search(
            conn,
            res_type="Patient",
            params=[("_id", "p0"), ("_revinclude", "Observation:subject")],
            base_url=BASE,
        )
        assert _ids(b) == ["p0"] and _ids(b, "include") == ["o0"]
        # iterate: Observation -> Patient -> Organization
        b = search(
            conn,
            res_type="Observation",
            params=[
                ("_id", "o2"),
                ("_include", "Observation:subject"),
                ("_include:iterate", "Patient:organization"),
            ],
            base_url=BASE,
        )
        assert sorted(_ids(b, "include")) == ["p2", "pkm1"]
        b = search(
            conn, res_type="Observation", params=[("_id", "o2"), ("_include", "*")], base_url=BASE
        )
        assert _ids(b, "include") == ["p2"]


def test_summary_and_elements(engine: Engine) -> None:
    with engine.begin() as conn:
        _city(conn)
        b = search(
            conn,
            res_type="Patient",
            params=[("_id", "p0"), ("_elements", "birthDate")],
            base_url=BASE,
        )
        r = b["entry"][0]["resource"]
        assert set(r) == {"resourceType", "id", "meta", "birthDate"}
        assert r["meta"]["tag"][-1]["code"] == "SUBSETTED"
        b = search(
            conn, res_type="Patient", params=[("_id", "p0"), ("_summary", "true")], base_url=BASE
        )
        r = b["entry"][0]["resource"]
        assert "text" not in r and r["name"] and r["birthDate"]
        b = search(
            conn, res_type="Patient", params=[("_id", "p0"), ("_summary", "data")], base_url=BASE
        )
        assert "text" not in b["entry"][0]["resource"]
        b = search(
            conn, res_type="Patient", params=[("_id", "p0"), ("_summary", "text")], base_url=BASE
        )
        assert set(b["entry"][0]["resource"]) == {"resourceType", "id", "meta", "text"}


def test_compartment_and_everything(engine: Engine) -> None:
    with engine.begin() as conn:
        _city(conn)
        b = search(
            conn, res_type="Observation", params=[], base_url=BASE, compartment=("Patient", "p1")
        )
        assert _ids(b) == ["o1"]
        assert b["link"][0]["url"] == f"{BASE}/Patient/p1/Observation"
        b = search(conn, res_type=None, params=[], base_url=BASE, compartment=("Patient", "p1"))
        # p1's Person (the patient index's) is in its compartment too, through Person.link
        types = sorted(e["resource"]["resourceType"] for e in b["entry"])
        assert types == ["Observation", "Person"]
        assert [i for i in _ids(b) if i == "o1"] == ["o1"]
        e = everything(conn, patient_id="p1", params=[("_count", "10")], base_url=BASE)
        assert isinstance(e, dict)
        matches = [
            x["resource"]["id"]
            for x in e["entry"]
            if x["search"]["mode"] == "match" and x["resource"]["resourceType"] != "Person"
        ]
        assert sorted(matches) == ["o1", "p1"]
        with pytest.raises(FhirError) as err:
            everything(conn, patient_id="nobody", params=[], base_url=BASE)
        assert err.value.status == 404


def test_system_search_with_type(engine: Engine) -> None:
    with engine.begin() as conn:
        _city(conn)
        b = search(conn, res_type=None, params=[("_type", "Patient,Organization")], base_url=BASE)
        assert sorted(_ids(b)) == ["p0", "p1", "p2", "pkm1"]
        b = search(conn, res_type=None, params=[("_id", "o1")], base_url=BASE)
        assert _ids(b) == ["o1"]


def test_unknown_parameters_lenient_and_strict(engine: Engine) -> None:
    with engine.begin() as conn:
        _city(conn)
        b = search(
            conn, res_type="Patient", params=[("foo", "1"), ("family", "amir")], base_url=BASE
        )
        assert _ids(b) == ["p2"]
        outcome = [e for e in b["entry"] if e["search"]["mode"] == "outcome"]
        assert outcome and "foo" in outcome[0]["resource"]["issue"][0]["diagnostics"]
        assert _link(b, "self") == [("family", "amir")]
        with pytest.raises(FhirError) as err:
            search(conn, res_type="Patient", params=[("foo", "1")], base_url=BASE, strict=True)
        assert err.value.status == 400 and err.value.issues[0].expression == ("foo",)


@pytest.mark.parametrize(
    "params,name",
    [
        ([("_count", "x")], "_count"),
        ([("_sort", "nonsense")], "_sort"),
        ([("_total", "all")], "_total"),
        ([("_summary", "maybe")], "_summary"),
        ([("_include", "Observation:status")], "_include"),
        ([("_cursor", "garbage")], "_cursor"),
        ([("birthdate", "zz2000")], "birthdate"),
    ],
)
def test_bad_result_parameters(engine: Engine, params: list, name: str) -> None:
    with engine.connect() as conn, pytest.raises(FhirError) as err:
        search(conn, res_type="Patient", params=params, base_url=BASE)
    assert err.value.status == 400 and err.value.issues[0].expression == (name,)


def test_reindex(engine: Engine) -> None:
    from fhirhub.search.tables import search_string

    with engine.begin() as conn:
        _city(conn)
        remove(conn, "Patient", "p2")
        conn.execute(search_string.delete())
        assert (
            search(conn, res_type="Patient", params=[("family", "sitti")], base_url=BASE).get(
                "entry"
            )
            is None
        )
        assert reindex(conn, res_type="Patient") == 2
        assert _ids(
            search(conn, res_type="Patient", params=[("family", "sitti")], base_url=BASE)
        ) == ["p0"]


@pytest.mark.parametrize(
    "res_type,params",
    [
        ("Observation", [("code", "8302-2"), ("subject", "Patient/p1")]),
        ("Observation", [("date", "ge2024-01-01"), ("date", "lt2024-03-01"), ("code", "8302-2")]),
        ("Patient", [("_has:Observation:subject:code", "8302-2"), ("birthdate", "lt1995")]),
        (
            "Patient",
            [("organization", "Organization/pkm1"), ("_has:Observation:subject:code", "8302-2")],
        ),
        ("Observation", [("subject.family", "sitti"), ("status", "final")]),
        ("Patient", [("family", "s,h,a"), ("_id", "p0,p2")]),
        ("Patient", [("_has:Observation:subject:code", "8302-2"), ("_sort", "birthdate")]),
    ],
)
# A reverse chain with at least MANY_REFERRERS referrers is walked on PostgreSQL (1: always).
@pytest.mark.parametrize("many_referrers", [1, 10**6])
def test_driven_pages_agree_with_find_matches(
    engine: Engine, res_type: str, params: list, many_referrers: int, monkeypatch
) -> None:
    """Pages driven from index rows return exactly what the plain criteria match."""
    from urllib.parse import urlencode

    from fhirhub.search import chains, find_matches

    monkeypatch.setattr(chains, "MANY_REFERRERS", many_referrers)

    with engine.begin() as conn:
        _city(conn)
        expected = sorted(rid for _, rid in find_matches(conn, res_type, urlencode(params)))
        got: list[str] = []
        page = [*params, ("_count", "1")]
        while True:
            b = search(conn, res_type=res_type, params=page, base_url=BASE)
            got.extend(_ids(b))
            nxt = _link(b, "next")
            if nxt is None:
                break
            page = nxt
        assert sorted(got) == expected and len(got) == len(set(got))
        if len(got) > 1:  # and back again
            back = search(conn, res_type=res_type, params=_link(b, "previous"), base_url=BASE)
            assert _ids(back) == [got[-2]]


def test_compartment_with_criteria(engine: Engine) -> None:
    with engine.begin() as conn:
        _city(conn)
        b = search(
            conn,
            res_type="Observation",
            params=[("code", "8302-2")],
            base_url=BASE,
            compartment=("Patient", "p2"),
        )
        assert _ids(b) == ["o2"]


@pytest.mark.parametrize("many_referrers", [1, 10**6])  # walked (on PostgreSQL) or listed
def test_reverse_chain_pages(engine: Engine, many_referrers: int, monkeypatch) -> None:
    from fhirhub.search import chains

    monkeypatch.setattr(chains, "MANY_REFERRERS", many_referrers)
    conditions = {
        "c1": ("p1", "A90"),
        "c2": ("p3", "A90"),
        "c3": ("p3", "A90"),
        "c4": ("p2", "I10"),
    }
    with engine.begin() as conn:
        for i in range(4):
            org = "pkm1" if i < 3 else "pkm2"
            store(
                conn,
                {
                    "resourceType": "Patient",
                    "id": f"p{i}",
                    "managingOrganization": {"reference": f"Organization/{org}"},
                },
            )
        for cid, (pid, code) in conditions.items():
            store(
                conn,
                {
                    "resourceType": "Condition",
                    "id": cid,
                    "subject": {"reference": f"Patient/{pid}"},
                    "code": {
                        "coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}]
                    },
                },
            )

        def ids(*params: tuple[str, str]) -> list[str]:
            got: list[str] = []
            page: list = [*params, ("_count", "1")]
            while page:
                b = search(conn, res_type="Patient", params=page, base_url=BASE)
                got.extend(_ids(b))
                page = _link(b, "next")
            return got

        dengue = ("_has:Condition:subject:code", "A90")
        assert ids(dengue) == ["p1", "p3"]
        assert ids(dengue, ("organization", "Organization/pkm1")) == ["p1"]
        assert ids(dengue, ("_has:Condition:subject:code", "I10")) == []
        assert ids(("_has:Condition:subject:code", "I10")) == ["p2"]
        assert ids(("_has:Condition:subject:code", "K29.7")) == []
