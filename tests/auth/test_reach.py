"""What a request reaches (fhirhub.auth.reach) and what a facility's data claims
(fhirhub.auth.binding): examples, and properties over arbitrary input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fhirhub.auth import binding, reach


def test_search_reach_examples() -> None:
    assert reach.search(["Observation"], []) == [("Observation", "search")]
    inc = reach.search(["Observation"], [("_include", "Observation:subject")])
    assert ("Patient", "read") in inc and ("Group", "read") in inc
    assert ("Patient", "read") in reach.search(
        ["Encounter"], [("_include", "Encounter:subject:Patient")]
    )
    assert reach.search(["Observation"], [("_include", "*")])[-1] == (reach.ALL, "read")
    rev = reach.search(["Patient"], [("_revinclude", "Provenance:target")])
    assert ("Provenance", "read") in rev and ("Provenance", "search") in rev
    chain = reach.search(["Observation"], [("subject:Patient.organization.name", "x")])
    assert ("Patient", "search") in chain and ("Organization", "search") in chain
    has = reach.search(["Patient"], [("_has:Observation:patient:_has:AuditEvent:entity:type", "x")])
    assert ("Observation", "search") in has and ("AuditEvent", "search") in has
    assert reach.system_search_types([("_type", "Patient,Observation")]) == [
        "Patient",
        "Observation",
    ]
    assert reach.system_search_types([]) == [reach.ALL]


def test_bundle_entry_examples() -> None:
    post = {"request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=x"}}
    assert reach.bundle_entry(post) == [("Patient", "create"), ("Patient", "search")]
    assert reach.bundle_entry({"request": {"method": "DELETE", "url": "Patient/1"}}) == [
        ("Patient", "delete")
    ]
    assert reach.bundle_entry({"request": {"method": "PUT", "url": "Patient?identifier=x"}}) == [
        ("Patient", "update"),
        ("Patient", "search"),
    ]
    assert reach.bundle_entry({"request": {"method": "GET", "url": "Nope/1"}}) is None
    assert reach.bundle_entry("junk") is None


_text = st.text(alphabet=st.sampled_from(list("abPatientObservation:._*,$-")), max_size=40)


@given(st.lists(st.tuples(_text, _text), max_size=6), st.lists(_text, max_size=3))
def test_search_reach_never_raises_and_names_known_types(
    params: list[tuple[str, str]], types: list[str]
) -> None:
    for res_type, interaction in reach.expand(reach.search(types, params)):
        assert interaction in ("read", "search")
        assert res_type != reach.ALL


_json = st.recursive(
    st.none() | st.text(max_size=30) | st.sampled_from(["Organization/a", "x/Organization/b"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["reference", "performer", "serviceProvider", "agent", "who", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@given(_json, st.sampled_from(["Organization/a", "Organization/b"]))
def test_binding_never_raises_and_names_only_other_organizations(data: object, own: str) -> None:
    for resource in (data, {"resourceType": "Provenance", "agent": data}):
        found = binding.foreign_claim(resource, own)
        assert found is None or found[1] != own
    binding.foreign_claim_in_patch([{"op": "add", "path": "/performer", "value": data}], own, "X")
