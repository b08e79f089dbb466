"""SMART v2 scopes: parsing, v1 forms, allows(), the role table and narrowing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirhub.auth.roles import ROLE_SCOPES, Role, grant, role_scopes
from fhirhub.auth.scopes import (
    Scope,
    ScopeError,
    allows,
    format_scopes,
    merge,
    narrow,
    parse_scope,
    parse_scopes,
    restrictions,
)

CATEGORY = "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"


def test_v2_scope_parses_into_its_parts() -> None:
    assert parse_scope("system/Patient.rs") == Scope("system", "Patient", "rs")
    assert parse_scope("system/*.cruds") == Scope("system", "*", "cruds")
    assert parse_scope("patient/Observation.c").context == "patient"


def test_query_part_is_kept() -> None:
    scope = parse_scope(f"system/Observation.rs?{CATEGORY}")
    assert scope.query == (
        ("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
    )
    assert str(scope) == f"system/Observation.rs?{CATEGORY}"
    two = parse_scope("system/Observation.rs?category=vital-signs&status=final")
    assert two.query == (("category", "vital-signs"), ("status", "final"))


@pytest.mark.parametrize(
    ("v1", "v2"),
    [
        ("system/Patient.read", "system/Patient.rs"),
        ("system/Patient.write", "system/Patient.cud"),
        ("system/Patient.*", "system/Patient.cruds"),
        ("system/*.read", "system/*.rs"),
    ],
)
def test_v1_forms_map_to_v2(v1: str, v2: str) -> None:
    assert parse_scope(v1) == parse_scope(v2)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "openid",
        "system/Patient",
        "system/Patient.",
        "system/Patient.sr",  # out of order
        "system/Patient.rr",  # repeated
        "system/Patient.x",
        "system/Patient.readwrite",
        "group/Patient.rs",
        "system/NotAType.rs",
        "system/patient.rs",
        "system/Patient.rs?",
        "system/Patient.rs?name",
        "system/Patient.rs?a=b=c",
        " system/Patient.rs",
    ],
)
def test_malformed_scope_raises_scope_error(bad: str) -> None:
    with pytest.raises(ScopeError) as info:
        parse_scope(bad)
    assert info.value.scope == bad
    assert info.value.reason


@given(st.text(max_size=60))
def test_any_string_parses_or_raises_only_scope_error(text: str) -> None:
    try:
        scopes = parse_scopes(text)
    except ScopeError:
        return
    assert parse_scopes(format_scopes(scopes)) == scopes


_types = st.sampled_from(["Patient", "Observation", "*", "AuditEvent", "Encounter"])
_perms = st.sets(st.sampled_from("cruds"), min_size=1).map(
    lambda s: "".join(c for c in "cruds" if c in s)
)
_query = st.lists(
    st.tuples(
        st.from_regex(r"[a-z][a-z\-:]{0,8}", fullmatch=True),
        st.text(st.characters(codec="utf-8", exclude_characters="&=?#\x00"), max_size=12),
    ),
    max_size=3,
).map(tuple)
_scopes = st.builds(Scope, st.sampled_from(["patient", "user", "system"]), _types, _perms, _query)


@given(_scopes)
def test_scope_round_trips_through_its_text(scope: Scope) -> None:
    assert parse_scope(str(scope)) == scope


def test_parse_scopes_splits_on_spaces_and_drops_duplicates() -> None:
    assert parse_scopes("system/Patient.rs system/Patient.read system/Observation.s") == (
        Scope("system", "Patient", "rs"),
        Scope("system", "Observation", "s"),
    )
    assert parse_scopes("") == ()
    with pytest.raises(ScopeError):
        parse_scopes("system/Patient.rs  system/Observation.s")


@pytest.mark.parametrize(
    ("granted", "resource_type", "interaction", "allowed"),
    [
        ("system/Patient.rs", "Patient", "read", True),
        ("system/Patient.rs", "Patient", "search", True),
        ("system/Patient.rs", "Patient", "update", False),
        ("system/Patient.rs", "Observation", "read", False),
        ("system/*.cruds", "Observation", "delete", True),
        ("system/*.cruds", "AuditEvent", "read", False),  # the audit trail is never a wildcard
        ("system/AuditEvent.rs", "AuditEvent", "search", True),
        ("system/Patient.c system/Patient.u", "Patient", "update", True),
        ("patient/Patient.rs", "Patient", "read", False),  # no launch context: grants nothing
        ("user/*.cruds", "Patient", "read", False),
        (f"system/Observation.rs?{CATEGORY}", "Observation", "read", False),  # restricted
        ("", "Patient", "read", False),
    ],
)
def test_allows(granted: str, resource_type: str, interaction: str, allowed: bool) -> None:
    assert allows(parse_scopes(granted), resource_type, interaction) is allowed  # type: ignore[arg-type]


def test_restrictions_report_the_query_of_a_restricted_grant() -> None:
    granted = parse_scopes(f"system/Observation.rs?{CATEGORY} system/Observation.s?status=final")
    assert restrictions(granted, "Observation", "search") == (
        parse_scope(f"system/Observation.s?{CATEGORY}").query,
        (("status", "final"),),
    )
    assert restrictions(granted, "Observation", "read") == (granted[0].query,)
    assert restrictions(granted, "Observation", "create") is None
    full = (*granted, parse_scope("system/Observation.s"))
    assert restrictions(full, "Observation", "search") == ()


def test_every_role_has_a_well_formed_table_entry() -> None:
    assert set(ROLE_SCOPES) == set(Role)
    for role in Role:
        assert role_scopes(role)


@pytest.mark.parametrize(
    ("role", "resource_type", "interaction", "allowed"),
    [
        (Role.facility, "Patient", "create", True),
        (Role.facility, "Observation", "search", True),
        (Role.facility, "Organization", "update", False),
        (Role.facility, "AuditEvent", "read", False),
        (Role.analyst, "Observation", "read", True),
        (Role.analyst, "Observation", "create", False),
        (Role.analyst, "Patient", "read", False),  # never a direct identifier
        (Role.analyst, "AuditEvent", "search", False),
        (Role.steward, "Patient", "update", True),
        (Role.steward, "Patient", "delete", False),
        (Role.steward, "Observation", "read", False),
        (Role.sync, "Immunization", "create", True),
        (Role.sync, "AuditEvent", "read", False),
        (Role.admin, "AuditEvent", "search", True),
        (Role.admin, "AuditEvent", "update", False),  # the audit trail is append-only
        (Role.admin, "Patient", "delete", True),
    ],
)
def test_role_table(role: Role, resource_type: str, interaction: str, allowed: bool) -> None:
    assert allows(role_scopes(role), resource_type, interaction) is allowed  # type: ignore[arg-type]


def test_grant_narrows_the_request_to_the_role() -> None:
    assert grant(Role.analyst, "system/Observation.cruds") == "system/Observation.rs"
    assert grant(Role.analyst, "system/Patient.rs") == ""
    assert grant(Role.steward, "system/Patient.read system/Observation.read") == (
        "system/Patient.rs"
    )
    # a wildcard request becomes the role's own types, never more
    granted = parse_scopes(grant(Role.analyst, "system/*.cruds"))
    assert granted == narrow(parse_scopes("system/*.rs"), role_scopes(Role.analyst))
    assert all(s.resource_type != "*" and s.permissions == "rs" for s in granted)
    # nothing requested: everything the role allows, one scope per type
    assert parse_scopes(grant(Role.facility, "")) == role_scopes(Role.facility)
    assert "system/Practitioner.crus" in grant(Role.facility, "").split()


def test_merge_joins_the_permissions_of_one_type() -> None:
    assert merge(parse_scopes("system/Patient.rs system/Observation.s system/Patient.c")) == (
        Scope("system", "Patient", "crs"),
        Scope("system", "Observation", "s"),
    )
    # a restricted scope stays apart from the unrestricted one
    assert len(merge(parse_scopes("system/Observation.s system/Observation.r?status=final"))) == 2


def test_grant_keeps_the_requested_query() -> None:
    assert grant(Role.sync, f"system/Observation.read?{CATEGORY}") == (
        f"system/Observation.rs?{CATEGORY}"
    )
    assert grant(Role.sync, "system/AuditEvent.rs") == ""
    assert grant(Role.admin, "system/AuditEvent.*") == "system/AuditEvent.rs"
    # a requested wildcard does not reach the audit trail, even for admin
    assert "AuditEvent" not in grant(Role.admin, "system/*.rs")


def test_grant_of_a_malformed_request_raises_scope_error() -> None:
    with pytest.raises(ScopeError):
        grant(Role.admin, "system/Patient.rs launch")


@given(st.lists(_scopes, max_size=4).map(tuple), st.sampled_from(list(Role)))
def test_narrowing_never_grants_more_than_the_role_or_the_request(
    requested: tuple[Scope, ...], role: Role
) -> None:
    allowed = role_scopes(role)
    granted = narrow(requested, allowed)
    for rt in ("Patient", "Observation", "AuditEvent", "Encounter"):
        for i in ("create", "read", "update", "delete", "search"):
            if allows(granted, rt, i):  # type: ignore[arg-type]
                assert allows(allowed, rt, i)  # type: ignore[arg-type]
                if requested:
                    assert allows(requested, rt, i)  # type: ignore[arg-type]


_SCOPE_ALPHABET = "systemuerpaint/Patient*Observation.cruds?=&|:%+ -_read write"


@given(st.text(alphabet=_SCOPE_ALPHABET, max_size=80))
def test_scope_like_strings_parse_or_raise_only_scope_error(text: str) -> None:
    try:
        scopes = parse_scopes(text)
    except ScopeError:
        return
    assert parse_scopes(format_scopes(scopes)) == scopes
