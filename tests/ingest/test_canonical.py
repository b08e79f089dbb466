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

mobile = st.from_regex(r"8[1-9][0-9]{6,10}", fullmatch=True)  # 8 to 12 national digits
# A landline: an area code (21 Jakarta, 402 Baubau, 4xx Sulawesi...) and the subscriber's number,
# 8 to 12 national digits in all.
landline = st.tuples(
    st.sampled_from(["21", "22", "31", "401", "402", "411", "61", "761"]),
    st.from_regex(r"[1-9][0-9]{4,7}", fullmatch=True),
).filter(lambda t: 8 <= len(t[0] + t[1]) <= 12)


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
        f"+62 0{national}",  # the trunk zero kept after the country code
    ]
    assert {c.phone_e164(f) for f in forms} == {f"+62{national}"}
    assert c.phone_e164(f"+62{national}") == f"+62{national}"


@given(landline)
def test_a_landline_with_its_area_code_is_one_e164_number(number: tuple[str, str]) -> None:
    area, subscriber = number
    national = area + subscriber
    forms = [
        f"0{area}{subscriber}",
        f"(0{area}) {subscriber}",
        f"0{area}-{subscriber}",
        f"+62 {area} {subscriber}",
        f"62{area}{subscriber}",
    ]
    assert {c.phone_e164(f) for f in forms} == {f"+62{national}"}
    # without its trunk zero only a mobile number (8...) is recognised
    assert c.phone_e164(national) is None


@given(
    st.one_of(
        st.from_regex(r"8[0-9]{12,16}", fullmatch=True),  # 13 or more national digits
        st.from_regex(r"[2-57][0-9]{12,16}", fullmatch=True),  # not 62...
    ),
    st.sampled_from(["0{}", "+62{}", "62{}", "+62 {}", "{}"]),
)
def test_a_number_longer_than_twelve_national_digits_is_not_a_phone(
    national: str, form: str
) -> None:
    assert c.phone_e164(form.format(national)) is None


@given(st.from_regex(r"8[0-9]{11}", fullmatch=True))
def test_twelve_national_digits_is_the_longest_phone(national: str) -> None:
    assert c.phone_e164(f"0{national}") == f"+62{national}"
    assert c.phone_e164(f"0{national}1") is None


@given(
    st.from_regex(r"8[0-9]{0,6}", fullmatch=True),  # fewer than 8 national digits
    st.sampled_from(["0{}", "+62{}", "62{}", "{}", "0{}-"]),
)
def test_fewer_than_eight_national_digits_is_not_a_phone(national: str, form: str) -> None:
    assert c.phone_e164(form.format(national)) is None
    assert c.phone_e164("0" + national + "1" * (8 - len(national))) is not None  # 8: a phone


@given(st.text(alphabet="0123456789+- ", max_size=7))
def test_too_short_to_be_a_phone(value: str) -> None:
    assert c.phone_e164(value) is None


@given(
    st.text(alphabet="0123456789", min_size=1, max_size=20), st.sampled_from(["+61", "+1", "001"])
)
def test_a_foreign_number_is_not_made_indonesian(digits: str, prefix: str) -> None:
    assert c.phone_e164(prefix + digits) is None


letter = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
digit = st.sampled_from("0123456789")


# A subdivision is one character (A09.9) or, in national extensions and the fifth character of
# chapters such as S and M, two (S72.01, M54.16); the pattern accepts letters there too.
subdivision = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=2)


@given(letter, digit, digit, st.one_of(st.none(), subdivision))
def test_icd10_codes_are_cleaned_the_same_whatever_the_spelling(l, d1, d2, sub) -> None:  # noqa: E741
    category = f"{l}{d1}{d2}"
    clean = f"{category}.{sub}" if sub else category
    spellings = [
        clean,
        clean.lower(),
        clean + ".",
        f" {clean} ",
        clean.replace(".", ""),
        clean.replace(".", " . ").lower(),
    ]
    if not sub:
        spellings.append(category + ".")
    assert {c.icd10(s) for s in spellings} == {clean}
    assert c.icd10(clean) == clean
    terminal = frozenset({category})
    assert c.icd10(f"{category}.{sub or '0'}", terminal) == category  # I10.0 -> I10


@given(
    letter,
    digit,
    digit,
    st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=5),
)
def test_a_subdivision_longer_than_two_characters_is_not_icd10(l, d1, d2, sub) -> None:  # noqa: E741
    assert c.icd10(f"{l}{d1}{d2}.{sub}") is None


@given(st.text(max_size=6).filter(lambda s: not any(ch.isdigit() for ch in s)))
def test_text_without_a_category_is_not_an_icd10_code(value: str) -> None:
    assert c.icd10(value) is None


moments = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2100, 1, 1))
offsets = st.integers(min_value=-12 * 4, max_value=14 * 4).map(lambda q: timedelta(minutes=15 * q))
# As sent: no fraction, or 1 to 9 digits of one (FHIR puts no limit on the precision).
fractions = st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True))


@given(moments, fractions, offsets, st.booleans())
def test_times_are_the_same_instant_at_wita(
    moment: datetime, fraction: str, offset: timedelta, z: bool
) -> None:
    zone = UTC if z else timezone(offset)
    aware = moment.replace(microsecond=0, tzinfo=zone)
    base = aware.isoformat(timespec="seconds")
    text = base.replace("+00:00", "Z") if z else base
    text = text[:19] + fraction + text[19:]
    out = c.wita(text)
    assert out is not None and out.endswith("+08:00")
    # the same instant, to the microsecond (Python reads at most six fraction digits)
    assert datetime.fromisoformat(out) == datetime.fromisoformat(text.replace("Z", "+00:00"))
    # the fraction is kept as sent, digit for digit
    assert (
        out
        == datetime.fromisoformat(base.replace("Z", "+00:00"))
        .astimezone(c.WITA)
        .strftime("%Y-%m-%dT%H:%M:%S")
        + fraction
        + "+08:00"
    )
    assert c.wita(out) == out


@given(
    moments,
    fractions,
    st.sampled_from(["date", "month", "year", "time", "minutes", "naive"]),
)
def test_values_without_a_time_and_offset_are_left_alone(
    moment: datetime, fraction: str, shape: str
) -> None:
    """Dates, partial dates, times of day and dateTimes without an offset are not instants:
    wita() leaves them (the adapter reads a naive time on the clinic's clock first)."""
    value = {
        "date": moment.date().isoformat(),
        "month": moment.strftime("%Y-%m"),
        "year": moment.strftime("%Y"),
        "time": moment.strftime("%H:%M:%S") + fraction,
        "minutes": moment.strftime("%Y-%m-%dT%H:%M"),
        "naive": moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction,
    }[shape]
    assert c.wita(value) is None
    resource = {"effectiveDateTime": value, "component": [{"valueDateTime": value}]}
    assert c.times_to_wita(resource) == {
        "effectiveDateTime": value,
        "component": [{"valueDateTime": value}],
    }


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


@st.composite
def spelt(draw: st.DrawFn, words: list[str]) -> str:
    """One of ``words`` as a clerk might type it: any letter in either case, spaces around it
    and, between the words of "laki laki", one or more spaces."""
    word = draw(st.sampled_from(words))
    cased = "".join(ch.upper() if draw(st.booleans()) else ch.lower() for ch in word)
    inner = draw(st.text(alphabet=" \t", min_size=1, max_size=3))
    cased = cased.replace(" ", inner)
    pad = st.text(alphabet=" \t\n", max_size=3)
    return draw(pad) + cased + draw(pad)


MALE = ["L", "Lk", "Laki-laki", "laki laki", "lakilaki", "Pria", "M", "male"]
FEMALE = ["P", "Pr", "Perempuan", "Wanita", "F", "female"]


@given(spelt(MALE))
def test_how_clinics_write_male_is_male(written: str) -> None:
    assert c.gender(written) == "male"


@given(spelt(FEMALE))
def test_how_clinics_write_female_is_female(written: str) -> None:
    assert c.gender(written) == "female"


def test_other_genders_are_kept_as_sent() -> None:
    for value in ("waria", "X", "", "  ", "laki", "L P"):
        assert c.gender(value) is None


@given(st.from_regex(r"PKM[0-9]{2}", fullmatch=True))
def test_a_facility_record_number_system_is_its_code_in_lower_case(code: str) -> None:
    assert c.mrn_system(code) == f"https://fhirhub.baubaukota.go.id/sid/mrn/{code.lower()}"


@given(
    st.sampled_from(["2024-02-30", "2023-02-29", "2024-13-01", "2024-00-10", "2024-04-31"]),
    st.sampled_from(["T10:00:00Z", "T10:00:00+07:00", "T24:30:00+08:00", "T10:61:00Z"]),
)
def test_an_impossible_date_or_time_is_kept_as_sent(day: str, time: str) -> None:
    """Shaped like a dateTime but not a real moment: wita() gives up (None), it never raises."""
    assert c.wita(day + time) is None
    resource = {"effectiveDateTime": day + time}
    assert c.times_to_wita(resource) == {"effectiveDateTime": day + time}


@given(
    st.one_of(
        st.from_regex(r"[0-9]{14,20}", fullmatch=True),  # too long
        st.from_regex(r"[0-9]{0,6}[A-Za-z][0-9]{0,6}", fullmatch=True),  # a letter in it
        st.just(""),
    )
)
def test_what_is_not_thirteen_digits_or_fewer_is_not_a_bpjs_card(value: str) -> None:
    assert c.bpjs_card(value) is None


def test_times_in_lists_are_rewritten_too() -> None:
    """Timing.event and other repeating dateTimes: each item at +08:00, other strings kept."""
    timing = {"event": ["2024-05-12T03:18:00Z", "2024-05-13T03:18:00.5Z", "Senin", "2024-05-14"]}
    assert c.times_to_wita(timing) == {
        "event": ["2024-05-12T11:18:00+08:00", "2024-05-13T11:18:00.5+08:00", "Senin", "2024-05-14"]
    }


@given(st.from_regex(r"[0-9]{11}", fullmatch=True), st.sampled_from(["P{}", "p{}", " P{} "]))
def test_an_ihs_number_is_p_and_eleven_digits(digits: str, form: str) -> None:
    assert c.ihs_number(form.format(digits)) == f"P{digits}"
    assert c.ihs_number(f"P{digits[:10]}") is None
    assert c.ihs_number(f"Q{digits}") is None
