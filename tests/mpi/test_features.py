"""Features of a FHIR Patient and the blocking keys they give (fhirhub.mpi.features)."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from fhirhub.mpi.features import (
    ADMINISTRATIVE_CODE,
    BPJS_CARD,
    IHS_NUMBER,
    MRN_BASE,
    NIK,
    NIK_IBU,
    blocking_keys,
    extract,
    national_phone,
)


def patient(**over: object) -> dict:
    p: dict = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [
            {"system": MRN_BASE + "pkm05", "value": "RM-000123"},
            {"system": NIK, "value": "7472014508900001"},
            {"system": BPJS_CARD, "value": "1234567"},
            {"system": IHS_NUMBER, "value": "p10000000013"},
        ],
        "name": [{"use": "official", "text": "Hj. Wa Ode Siti Aminah, S.Pd."}],
        "gender": "female",
        "birthDate": "1990-08-05",
        "telecom": [{"system": "phone", "value": "+6281234567890"}],
        "address": [
            {
                "use": "home",
                "extension": [
                    {
                        "url": ADMINISTRATIVE_CODE,
                        "extension": [
                            {"url": "village", "valueCode": "7472011001"},
                            {"url": "rt", "valueCode": "003"},
                            {"url": "rw", "valueCode": "01"},
                        ],
                    }
                ],
            }
        ],
        "multipleBirthInteger": 0,
    }
    p.update(over)
    return p


def test_a_canonical_patient_gives_every_feature():
    f = extract(patient())
    assert f.name is not None and f.name.tokens == ("SITI", "AMINAH")
    assert f.name.prefix == "WA ODE"
    assert f.birth_date == date(1990, 8, 5) and f.gender == "female"
    assert f.nik is not None and f.nik.value == "7472014508900001" and f.nik_conflicts == ()
    assert f.bpjs == "0000001234567"  # leading zeros restored
    assert f.ihs == "P10000000013"
    assert f.mrns == (("pkm05", "RM-000123"),)
    assert f.phones == {"81234567890"}
    assert (f.kelurahan, f.rt, f.rw) == ("7472011001", "3", "1")
    assert f.multiple_birth == 0 and not f.newborn_placeholder


def test_a_nik_that_disagrees_with_the_record_is_flagged():
    f = extract(patient(birthDate="1991-08-05", gender="male"))
    assert set(f.nik_conflicts) == {"birthDate", "gender"}


def test_a_newborn_placeholder_with_the_mothers_nik():
    p = patient(
        identifier=[{"system": NIK_IBU, "value": "7472014508900001"}],
        name=[{"text": "By. Ny. Siti Aminah"}],
        birthDate="2025-01-02",
        multipleBirthInteger=2,
    )
    f = extract(p)
    assert f.newborn_placeholder and f.nik is None and f.nik_ibu == "7472014508900001"
    assert "nikibu-dob:7472014508900001:2025-01-02" in blocking_keys(f)


def test_structured_names_and_local_phone_formats():
    p = patient(
        name=[{"use": "old", "text": "X"}, {"given": ["La", "Ode", "Hasan"], "family": "Basri"}],
        telecom=[{"system": "phone", "value": "0812-3456-7890"}, {"system": "email", "value": "a"}],
    )
    f = extract(p)
    assert f.name is not None and f.name.tokens == ("HASAN", "BASRI")
    assert f.phones == {"81234567890"}


def test_blocking_keys_of_a_full_record():
    keys = blocking_keys(extract(patient()))
    assert {
        "nik:7472014508900001",
        "bpjs:0000001234567",
        "ihs:P10000000013",
        "phone:81234567890",
        "dob-kel:1990-08-05:7472011001",
    } <= keys
    assert any(k.startswith("name-dob:") and k.endswith(":1990-08-05") for k in keys)
    assert any(k.startswith("name-year-kel:") and k.endswith(":1990:7472011001") for k in keys)
    assert not any(k.startswith("nikibu-dob:") for k in keys)  # no mother's NIK: no key


def test_a_missing_value_drops_its_key_and_never_widens():
    bare = extract({"resourceType": "Patient", "name": [{"text": "Siti"}]})
    assert blocking_keys(bare) == set()  # no birth date: no name key, no "all SITIs" block
    no_dob = extract(patient(birthDate=None))
    assert not any(k.startswith(("name-dob", "dob-kel", "nikibu")) for k in blocking_keys(no_dob))
    partial = extract(patient(birthDate="1990"))
    assert partial.birth_date is None


@given(st.text(alphabet="0123456789 -+().", max_size=20))
def test_national_phone_is_digits_without_country_or_trunk_prefix(raw):
    phone = national_phone(raw)
    if phone is not None:
        assert phone.isdigit() and 8 <= len(phone) <= 12 and not phone.startswith("0")


@given(st.from_regex(r"8\d{9,10}", fullmatch=True))
def test_every_phone_format_gives_one_national_number(n):
    forms = [f"0{n}", f"+62{n}", f"62{n}", f"+62 {n[:3]}-{n[3:]}", f"0{n[:3]}-{n[3:7]}-{n[7:]}"]
    assert {national_phone(x) for x in forms} == {n}


@given(
    st.fixed_dictionaries(
        {"resourceType": st.just("Patient")},
        optional={
            "birthDate": st.text(max_size=12),
            "gender": st.text(max_size=8),
            "name": st.lists(st.fixed_dictionaries({"text": st.text(max_size=30)}), max_size=2),
            "identifier": st.lists(
                st.fixed_dictionaries(
                    {
                        "system": st.sampled_from([NIK, NIK_IBU, BPJS_CARD, IHS_NUMBER]),
                        "value": st.text(max_size=20),
                    }
                ),
                max_size=4,
            ),
        },
    )
)
def test_extract_never_fails_on_odd_patients(p):
    f = extract(p)
    for key in blocking_keys(f):
        _kind, _, value = key.partition(":")
        assert value and "None" not in value.split(":")


PASSPORT = "http://example.org/passport"


def test_generic_evidence_postcode_town_street_and_any_identifier_system():
    p = patient(
        identifier=[
            {"system": PASSPORT, "value": "ab-123 456"},
            {"system": MRN_BASE + "pkm05", "value": "RM-1"},  # an MRN is not "another id"
        ],
        address=[
            {"use": "work", "line": ["Jl. Lain 1"], "postalCode": "99999"},
            {"use": "home", "line": ["Jl. Betoambari No. 91", "Blok C"], "city": "Kota Baubau",
             "postalCode": " 93 715 "},
        ],
    )  # fmt: skip
    f = extract(p)
    assert f.other_ids == ((PASSPORT, "AB123456"),)
    assert (f.postcode, f.locality) == ("93715", "KOTA BAUBAU")
    assert f.street == "JL BETOAMBARI NO 91 BLOK C"  # house numbers kept
    keys = blocking_keys(f)
    assert f"id:{PASSPORT}|AB123456" in keys
    # a value one typo away (a character dropped, added, changed) shares a deletion key
    typo = extract(patient(identifier=[{"system": PASSPORT, "value": "AB12456"}]))
    assert {k for k in keys if k.startswith("id-del:")} & blocking_keys(typo)
    assert "dob-pc:1990-08-05:93715" in keys
    assert "dob-street:1990-08-05:JL BETOAMBARI NO 91 BLOK C" in keys
    assert any(k.startswith("name-pc:") and k.endswith(":93715") for k in keys)


def test_a_nik_whose_date_is_far_from_the_record_is_foreign():
    assert extract(patient(birthDate="2015-02-01")).nik_foreign  # a parent's NIK on a child
    near = extract(patient(birthDate="1990-05-08"))  # day and month swapped: a typo
    assert near.nik_conflicts == ("birthDate",) and not near.nik_foreign
    assert not extract(patient(birthDate="1990-01-01")).nik_foreign  # "born 1990"
    assert not extract(patient()).nik_foreign


@given(st.text(max_size=40))
def test_address_text_is_idempotent_and_plain(text):
    from fhirhub.mpi.features import address_text

    once = address_text(text)
    assert address_text(once) == once
    assert all(c.isascii() and (c.isalnum() or c == " ") for c in once)
    assert once == once.strip() and "  " not in once
