"""Name normalisation for the patient index: what a clerk types, taken apart."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirhub.mpi.names import fold, parse_name, phonetic, spelling_key


@pytest.mark.parametrize(
    ("typed", "tokens", "prefix"),
    [
        ("La Ode Hasan", ("HASAN",), "LA ODE"),
        ("LAODE HASAN", ("HASAN",), "LA ODE"),
        ("L.O. Hasan", ("HASAN",), "LA ODE"),
        ("La Odhe Hasan", ("HASAN",), "LA ODE"),
        ("Wa Ode Nurhayati", ("NURHAYATI",), "WA ODE"),
        ("WAODE NURHAYATI", ("NURHAYATI",), "WA ODE"),
        ("La Rusdin", ("RUSDIN",), "LA"),
        ("wa  siti", ("SITI",), "WA"),
        ("Hasan", ("HASAN",), None),
        # "La" alone is a name, not a prefix of nothing
        ("La", ("LA",), None),
    ],
)
def test_buton_prefixes_are_split_from_the_name(typed: str, tokens: tuple, prefix: str) -> None:
    parsed = parse_name(typed)
    assert parsed.tokens == tokens
    assert parsed.prefix == prefix


@pytest.mark.parametrize(
    ("typed", "tokens", "honorifics", "degrees"),
    [
        ("Hj. Siti Aminah", ("SITI", "AMINAH"), {"HJ"}, set()),
        ("H. Abdul Kadir, S.Pd.", ("ABDUL", "KADIR"), {"H"}, {"SPD"}),
        ("SITI AMINAH, NY", ("SITI", "AMINAH"), {"NY"}, set()),
        ("Siti Aminah, S.Kep., M.Kes", ("SITI", "AMINAH"), set(), {"SKEP", "MKES"}),
        ("dr. Yusuf Hamid Sp.OG", ("YUSUF", "HAMID"), {"DR"}, {"SPOG"}),
        ("Tn. Ramli", ("RAMLI",), {"TN"}, set()),
        ("Ir. H. Zainal", ("ZAINAL",), {"IR", "H"}, set()),
        ("Amir A.Md.Keb", ("AMIR",), set(), {"AMDKEB"}),
    ],
)
def test_honorifics_and_degrees_are_not_part_of_the_name(
    typed: str, tokens: tuple, honorifics: set, degrees: set
) -> None:
    parsed = parse_name(typed)
    assert parsed.tokens == tokens
    assert parsed.honorifics == honorifics
    assert parsed.degrees == degrees


@pytest.mark.parametrize(
    "typed",
    [
        "By. Ny. Siti Aminah",
        "BY NY SITI AMINAH",
        "Bayi Ny. Siti Aminah",
        "Bayi Nyonya Siti Aminah",
        "by ny siti aminah",
    ],
)
def test_newborn_placeholders_keep_the_mothers_name_and_say_so(typed: str) -> None:
    parsed = parse_name(typed)
    assert parsed.newborn
    assert parsed.tokens == ("SITI", "AMINAH")
    assert parsed.sex_hint is None  # "Ny." is the mother's title, not the baby's


def test_a_newborn_placeholder_of_a_buton_mother() -> None:
    parsed = parse_name("By. Ny. Wa Ode Nurhayati")
    assert parsed.newborn and parsed.prefix == "WA ODE" and parsed.tokens == ("NURHAYATI",)


@pytest.mark.parametrize(
    ("typed", "tokens", "father", "sex"),
    [
        ("Siti binti Ahmad", ("SITI",), ("AHMAD",), "female"),
        ("Hasan bin Usman", ("HASAN",), ("USMAN",), "male"),
        ("Binti", ("BINTI",), (), None),  # a lone word is a name, not a patronymic marker
    ],
)
def test_bin_and_binti_separate_the_fathers_name(
    typed: str, tokens: tuple, father: tuple, sex: str | None
) -> None:
    parsed = parse_name(typed)
    assert (parsed.tokens, parsed.father, parsed.sex_hint) == (tokens, father, sex)


@pytest.mark.parametrize(
    ("typed", "sex"),
    [("La Rusdin", "male"), ("Wa Siti", "female"), ("Hj. Siti", "female"), ("H. Amir", "male"),
     ("Siti", None), ("H. Wa Ode Siti", None)],
)  # fmt: skip
def test_prefixes_and_titles_hint_at_sex_unless_they_disagree(typed: str, sex: str | None) -> None:
    assert parse_name(typed).sex_hint == sex


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("SOEKARNO", "SUKARNO"),
        ("DJOKO", "JOKO"),
        ("TJAHJONO", "CAHYONO"),
        ("JUSUF", "YUSUF"),
        ("SJAHRIR", "SYAHRIR"),
        ("NJOMAN", "NYOMAN"),
        ("CHAIRUL", "KHAIRUL"),
        ("HABIBIE", "HABIBI"),
        ("FATIMAH", "FATIMA"),
        ("ABDULLAH", "ABDULAH"),
        ("SITTI", "SITI"),
        ("DJAFAR", "JAFAR"),
        ("QOMAR", "KOMAR"),
    ],
)
def test_old_and_new_spellings_share_a_key(old: str, new: str) -> None:
    assert spelling_key(old) == spelling_key(new)


@pytest.mark.parametrize(
    ("a", "b"), [("HASAN", "HUSEN"), ("SITI", "SATI"), ("AMIR", "UMAR"), ("RAHMAN", "RAHMAT")]
)
def test_different_names_keep_different_keys(a: str, b: str) -> None:
    assert spelling_key(a) != spelling_key(b)


def test_spellings_of_muhammad_are_one_token() -> None:
    for typed in ("Muhamad Ali", "MOCH. ALI", "Moh Ali", "Mohammad Ali", "Muh. Ali"):
        assert parse_name(typed).tokens == ("MUHAMMAD", "ALI"), typed


def test_the_key_ignores_order() -> None:
    assert parse_name("Aminah Siti").key == parse_name("SITI AMINAH").key
    assert parse_name("AMINAH, SITI").key == parse_name("Siti Aminah").key


def test_fold_drops_accents_and_punctuation() -> None:
    assert fold("  Ma'ruf  Amîn-Nasution ") == "MARUF AMIN NASUTION"


def test_phonetic_codes_agree_on_doubled_letters_and_vowels() -> None:
    assert phonetic("MUHAMMAD") == phonetic("MUHAMAD")
    assert phonetic("SITTI") == phonetic("SITI")
    assert phonetic("HASAN") != phonetic("RAHMAN")
    assert phonetic("") == ""


_TYPED = st.text(
    alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,'-éü")),
    max_size=40,
)


@given(_TYPED)
def test_parsing_never_fails_and_tokens_are_clean(typed: str) -> None:
    parsed = parse_name(typed)
    for token in parsed.tokens:
        assert token and token.isascii() and token.isalpha() and token.isupper()


@given(_TYPED)
def test_parsing_is_idempotent_on_the_tokens(typed: str) -> None:
    parsed = parse_name(typed)
    again = parse_name(" ".join(parsed.tokens))
    # A token that is itself a title or prefix word may be read as one the second time; what
    # stays a token stays the same.
    assert set(again.tokens) <= set(parsed.tokens) | {"MUHAMMAD"}


@given(st.text(alphabet=st.sampled_from(list("ABCDEHIJKNOSTUY")), min_size=1, max_size=12))
def test_the_spelling_key_is_idempotent(token: str) -> None:
    assert spelling_key(spelling_key(token)) == spelling_key(token)


@given(_TYPED, _TYPED)
def test_case_and_spacing_do_not_change_the_parse(a: str, b: str) -> None:
    typed = f"{a} {b}"
    assert parse_name(typed.upper()) == parse_name(" ".join(typed.lower().split()))
