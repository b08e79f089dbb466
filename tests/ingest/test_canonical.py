"""Property tests of the canonical normalisers (docs/canonical.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

from fhirhub.ingest import canonical as c
from fhirhub.ingest.regions import Village, load_regions

ROOT = Path(__file__).resolve().parents[2]
REGIONS = load_regions(ROOT / "terminology" / "regions")
VILLAGES = sorted(REGIONS.villages.values(), key=lambda v: v.code)

mobile = st.from_regex(r"8[1-9][0-9]{7,10}", fullmatch=True)


@given(mobile)
def test_every_way_clinics_write_a_phone_is_one_e164_number(national: str) -> None:
    spaced = f"{national[:3]}-{national[3:7]}-{national[7:]}"
    forms = [
        f"0{national}",
        f"+62{national}",
        f"62{national}",
        f"0{spaced}",
        f"+62 {spaced}",
        national,
        f" (0{national[:3]}) {national[3:]} ",
    ]
    assert {c.phone_e164(f) for f in forms} == {f"+62{national}"}
    assert c.phone_e164(f"+62{national}") == f"+62{national}"


@given(st.text(alphabet="0123456789+- ", max_size=7))
def test_too_short_to_be_a_phone(value: str) -> None:
    assert c.phone_e164(value) is None


letter = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
digit = st.sampled_from("0123456789")


@given(letter, digit, digit, st.one_of(st.none(), digit))
def test_icd10_codes_are_cleaned_the_same_whatever_the_spelling(l, d1, d2, sub) -> None:  # noqa: E741
    category = f"{l}{d1}{d2}"
    clean = f"{category}.{sub}" if sub else category
    spellings = [clean, clean.lower(), clean + ".", f" {clean} ", clean.replace(".", "")]
    if not sub:
        spellings.append(category + ".")
    assert {c.icd10(s) for s in spellings} == {clean}
    assert c.icd10(clean) == clean
    assert c.icd10(f"{category}.0", frozenset({category})) == category  # I10.0 -> I10


@given(st.text(max_size=6).filter(lambda s: not any(ch.isdigit() for ch in s)))
def test_text_without_a_category_is_not_an_icd10_code(value: str) -> None:
    assert c.icd10(value) is None


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=-12 * 4, max_value=14 * 4).map(lambda q: timedelta(minutes=15 * q)),
    st.booleans(),
)
def test_times_are_the_same_instant_at_wita(moment: datetime, offset: timedelta, z: bool) -> None:
    aware = moment.replace(microsecond=0, tzinfo=UTC if z else timezone(offset))
    text = aware.isoformat().replace("+00:00", "Z") if z else aware.isoformat()
    out = c.wita(text)
    assert out is not None and out.endswith("+08:00")
    assert datetime.fromisoformat(out) == aware
    assert c.wita(out) == out


@given(st.sampled_from(["2024-01-17", "2024-01", "2024", "10:18:00", "2024-01-17T10:18"]))
def test_values_without_a_time_and_offset_are_left_alone(value: str) -> None:
    assert c.wita(value) is None


@given(st.from_regex(r"[0-9]{16}", fullmatch=True), st.sampled_from([" ", ".", "-", ""]))
def test_a_nik_keeps_its_sixteen_digits_whatever_the_separators(nik: str, sep: str) -> None:
    typed = sep.join([nik[:6], nik[6:12], nik[12:]])
    assert c.nik(typed) == nik
    assert c.nik(nik[:15]) is None


@given(st.from_regex(r"[0-9]{13}", fullmatch=True))
def test_a_bpjs_card_gets_its_leading_zeros_back(card: str) -> None:
    assert c.bpjs_card(card.lstrip("0") or "0") == card.lstrip("0").zfill(13)
    assert c.bpjs_card(card) == card


@st.composite
def typo(draw: st.DrawFn) -> tuple[str, str]:
    village = draw(st.sampled_from(VILLAGES))
    name = village.name
    i = draw(st.integers(min_value=1, max_value=len(name) - 2))
    kind = draw(st.sampled_from(["substitute", "drop", "swap", "case"]))
    if kind == "substitute":
        name = name[:i] + draw(st.sampled_from("aeiouklmnrst")) + name[i + 1 :]
    elif kind == "drop":
        name = name[:i] + name[i + 1 :]
    elif kind == "swap":
        name = name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    else:
        name = name.upper()
    return village.code, name


def nearest_other(code: str, name: str) -> int:
    return min(
        Levenshtein.distance(name.lower(), v.name.lower()) for v in VILLAGES if v.code != code
    )


def check_typo(code: str, name: str, found: Village | None) -> None:
    """A typo nearer its own kelurahan than any other never gets another's code; a long name
    far from every other survives it."""
    own = next(v for v in VILLAGES if v.code == code)
    mine = Levenshtein.distance(name.lower(), own.name.lower())
    other = nearest_other(code, name)
    if other > mine:
        assert found is None or found.code == code, (name, found)
    if len(own.name) >= 8 and other >= 5:
        assert found is not None and found.code == code, name


@given(typo(), st.sampled_from(["{}", "Kel. {}", "Jl. Anoa No. 5, Kel. {}, Kota Baubau"]))
def test_a_misspelt_kelurahan_is_never_taken_for_another(case, template: str) -> None:
    code, name = case
    check_typo(code, name, REGIONS.from_text(template.format(name)))


def test_every_single_letter_typo_of_every_kelurahan() -> None:
    for village in VILLAGES:
        n = village.name
        variants = {n[:i] + n[i + 1 :] for i in range(len(n))}
        variants |= {n[:i] + n[i + 1] + n[i] + n[i + 2 :] for i in range(len(n) - 1)}
        variants |= {n[:i] + ch + n[i + 1 :] for i in range(len(n)) for ch in "aeikmnorsuwy"}
        for name in variants:
            check_typo(village.code, name, REGIONS.by_name(name))


def test_every_kelurahan_is_found_by_its_own_name() -> None:
    for village in VILLAGES:
        assert REGIONS.by_name(village.name) == village
        assert (
            REGIONS.from_text(f"Jl. Bataraguru No. 1, Kel. {village.name}, Kota Baubau") == village
        )


@given(
    st.sampled_from(["L", "Lk", "Laki-laki", "laki laki", "Pria", "M", "male"]),
    st.sampled_from([str.lower, str.upper, str.title, lambda s: f"  {s} "]),
)
def test_how_clinics_write_male_is_male(written: str, spell) -> None:  # type: ignore[no-untyped-def]
    assert c.gender(spell(written)) == "male"


@given(st.sampled_from(["P", "Pr", "Perempuan", "Wanita", "F", "female"]))
def test_how_clinics_write_female_is_female(written: str) -> None:
    assert c.gender(written) == c.gender(written.upper()) == "female"


def test_other_genders_are_kept_as_sent() -> None:
    for value in ("waria", "X", "", "  ", "laki", "L P"):
        assert c.gender(value) is None
