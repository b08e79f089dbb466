"""Fellegi-Sunter estimation, scoring, rules and clustering (fhirhub.mpi.score, .cluster)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpi_factories import rec

from fhirhub.model.systems import NIK
from fhirhub.mpi.cluster import cluster
from fhirhub.mpi.compare import FIELDS, LEVELS, Comparison, compare
from fhirhub.mpi.features import Features, extract
from fhirhub.mpi.names import parse_name
from fhirhub.mpi.nik import parse_nik
from fhirhub.mpi.score import (
    LINK,
    NO_LINK,
    REVIEW,
    Model,
    candidate_pairs,
    decide,
    estimate_m,
    rules,
    train,
)
from fhirhub.synth.generate import build
from fhirhub.synth.writer import write_city


def model(**over: object) -> Model:
    m = {f: [0.9] + [0.1 / (len(LEVELS[f]) - 1)] * (len(LEVELS[f]) - 1) for f in FIELDS}
    u = {f: [0.01] + [0.99 / (len(LEVELS[f]) - 1)] * (len(LEVELS[f]) - 1) for f in FIELDS}
    return Model(m=m, u=u, prior=0.1, token_tf={"SITI": 0.2, "AMINA": 0.001}, **over)


def test_em_recovers_m_and_lambda_of_a_synthetic_mixture():
    rng = random.Random(7)
    true_m = {f: [0.85] + [0.15 / (len(LEVELS[f]) - 1)] * (len(LEVELS[f]) - 1) for f in FIELDS}
    u = {f: [0.02] + [0.98 / (len(LEVELS[f]) - 1)] * (len(LEVELS[f]) - 1) for f in FIELDS}
    pairs = []
    for _ in range(20_000):
        p = true_m if rng.random() < 0.3 else u
        levels = tuple(rng.choices(range(len(LEVELS[f])), weights=p[f])[0] for f in FIELDS)
        pairs.append(Comparison(levels))
    m, prior = estimate_m(pairs, u, prior=0.5)
    assert prior == pytest.approx(0.3, abs=0.02)
    for f in FIELDS:
        assert m[f][0] == pytest.approx(0.85, abs=0.03)


def test_model_round_trips_through_json():
    a = model(link_threshold=0.97)
    assert Model.from_json(a.to_json()) == a


def test_a_common_name_weighs_less_than_a_rare_one():
    mo = model()
    siti = decide(mo, rec("Siti"), rec("Siti"))
    aminah = decide(mo, rec("Aminah"), rec("Aminah"))
    assert aminah.breakdown["name"] > siti.breakdown["name"]


def test_the_buton_prefix_carries_no_weight():
    mo = model()
    with_prefix = decide(mo, rec("Wa Ode Siti"), rec("Wa Ode Siti"))
    assert with_prefix.breakdown == decide(mo, rec("Siti"), rec("Wa Siti")).breakdown


def test_an_agreeing_record_links_and_probability_is_calibrated_by_weight():
    d = decide(model(), rec(), rec())
    assert d.band == LINK and d.probability > 0.99 and d.weight > 0
    far = decide(
        model(),
        rec(),
        rec(
            "Budi",
            birth_date=date(1950, 1, 3),
            nik=None,
            phones=frozenset(),
            kelurahan="7472011002",
        ),
    )
    assert far.band == NO_LINK and far.probability < 0.05


def forbidden(a: Features, b: Features) -> list[str]:
    return rules(a, b, compare(a, b))[0]


def test_two_different_valid_niks_never_link():
    other = parse_nik("7472014508900002")  # one digit off: still allowed (a typo)
    assert forbidden(rec(), rec(nik=other)) == []
    b = rec(nik=parse_nik("7472015509910007"))
    assert "different-nik" in forbidden(rec(), b)
    assert decide(model(), rec(), b).band == NO_LINK


def test_a_newborn_placeholder_with_the_mothers_nik_is_not_forbidden_by_nik():
    baby = rec("By. Ny. Siti", nik_ibu="7472014508900001", nik=parse_nik("7472015509910007"))
    assert "different-nik" not in forbidden(rec(), baby)


def test_different_birth_orders_never_link():
    assert "multiple-birth-order" in forbidden(rec(multiple_birth=1), rec(multiple_birth=2))
    assert forbidden(rec(multiple_birth=1), rec(multiple_birth=None)) == []


def test_twins_same_birth_date_same_household_different_given_names():
    a, b = rec("Muhammad Rizky", nik=None), rec("Muhammad Rizal", nik=None)
    assert "twins" in forbidden(a, b)
    assert decide(model(), a, b).band == NO_LINK
    # The same name with a typo is the same child, not a twin.
    assert "twins" not in forbidden(a, rec("Muhammad Rizki", nik=None))


def test_a_parent_and_child_of_the_same_name_never_link():
    father = rec("La Ode Hasan", gender="male", nik=None)
    son = replace(father, birth_date=date(2015, 8, 5))
    assert "generation-apart" in forbidden(father, son)


def patient(
    name: str, born: str, nik: str | None, gender: str = "male", **extra: object
) -> Features:
    p: dict = {"resourceType": "Patient", "name": [{"text": name}], "birthDate": born}
    p["gender"] = gender
    if nik:
        p["identifier"] = [{"system": NIK, "value": nik}]
    p["telecom"] = [{"system": "phone", "value": "081234567890"}]
    return extract({**p, **extra}, today=date(2026, 1, 1))


def test_a_childs_record_under_the_fathers_nik_links_to_the_child_not_the_father():
    father = patient("La Ode Hasan", "1975-06-17", "7472061706750001")
    child_own = patient("La Ode Rahman", "2012-08-02", "7472020208120001")
    child_under_father = patient("La Ode Rahman", "2012-08-02", "7472061706750001")
    assert child_under_father.nik_foreign and not child_own.nik_foreign
    assert "different-nik" not in forbidden(child_own, child_under_father)
    assert decide(model(), child_own, child_under_father).band == LINK
    assert decide(model(), father, child_under_father).band == NO_LINK


def test_a_same_named_son_under_his_fathers_nik_is_never_linked_to_the_father():
    father = patient("La Ode Hasan", "1975-06-17", "7472061706750001")
    son = patient("La Ode Hasan", "2005-03-01", "7472061706750001")
    d = decide(model(), father, son)
    assert d.band == NO_LINK and "generation-apart" in d.reasons


def test_a_birth_date_mistyped_against_a_correct_nik_still_links():
    nik = "7472081610750001"  # born 16-10-1975
    typo = patient("Muhammad", "1974-10-16", nik)  # year one off
    unknown_day = patient("Muhammad", "1975-01-01", nik)  # "born 1975"
    right = patient("Muhammad", "1975-10-16", nik)
    assert typo.nik_conflicts == ("birthDate",) and not typo.nik_foreign
    assert decide(model(), right, typo).band == LINK
    assert decide(model(), right, unknown_day).band == LINK


def test_one_nik_on_two_records_of_other_sex_and_other_names_goes_to_review():
    # Twins of either sex, one NIK typed for both: the sex contradicts the NIK on one record.
    brother = patient("Hasan Basri", "2010-03-01", "7472060103100001")
    sister = patient("Fatimah Basri", "2010-03-01", "7472060103100001", gender="female")
    d = decide(model(), brother, sister)
    assert d.band == REVIEW and "nik-conflicts-record" in d.reasons
    # The sex typed wrong on a record of the same name is a typo, not a twin.
    typo = patient("Hasan Basri", "2010-03-01", "7472060103100001", gender="female")
    assert decide(model(), brother, typo).band == LINK


def test_names_that_say_a_man_and_a_woman_never_link():
    # La / Wa (and bin / binti, Hj.) say the sex; a clerk's wrong sex code does not change it.
    husband = patient("La Djafar", "1995-03-07", None)
    wife = patient("Wa Nur Djafar", "1995-03-22", None, gender="female")
    assert "sex-by-name" in forbidden(husband, wife)
    assert "sex-by-name" not in forbidden(husband, patient("Djafar", "1995-03-07", None))


def test_a_shared_household_without_identity_is_not_an_automatic_link():
    # Same phone, same RT, same family name, different birth dates, no identifier.
    a = rec("Lily Wijaya", nik=None, birth_date=date(2017, 3, 21))
    b = rec("Susi Wijaya", nik=None, birth_date=date(2016, 11, 26))
    assert decide(model(), a, b).band != LINK


def test_clustering_never_joins_a_forbidden_pair_through_a_third_record():
    # 0-1 and 1-2 are links, 0-2 are twins: 2 may join 1 only if 0 is not there.
    labels = cluster(3, [(0.999, 0, 1), (0.99, 1, 2)], cannot=[(0, 2)])
    assert labels[0] == labels[1] and labels[2] != labels[0]


def test_train_gives_a_usable_model_from_records_alone():
    people = [
        rec(
            f"Name{i} Family{i % 7}",
            nik=None,
            birth_date=date(1950 + i % 60, 1 + i % 12, 1 + i % 28),
            phones=frozenset({f"81{i:09d}"}),
            kelurahan=f"747201{1000 + i % 40}",
        )
        for i in range(300)
    ]
    records = people + [
        replace(p, name=parse_name(p.name.tokens[0] if p.name else "")) for p in people[:100]
    ]
    mo = train(records)
    assert 0 < mo.prior < 1
    assert (
        decide(mo, records[0], records[300]).probability
        > decide(mo, records[0], records[1]).probability
    )
    assert all(0 < x < 1 for f in FIELDS for x in mo.m[f] + mo.u[f])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 7])  # seed 7's city has twins; seed 2's has none
def test_accuracy_on_a_synthetic_city_not_tuned_on(tmp_path: Path, seed: int):
    """A guard against regressions: thresholds (0.99 link, 0.5 review) were chosen on seed 1,
    and the rules and comparisons were developed on seeds 1, 2, 3 and 7 (so these are not
    held out; bench/bench_mpi_accuracy.py scores seeds that were). The model itself is
    estimated from each city's records without their labels."""
    from mpi_synthcity import link_and_measure, load

    write_city(build(400, seed), tmp_path, workers=1)
    city = load(tmp_path)
    accuracy = link_and_measure(city, train(city.records))
    print(f"seed {seed}: {accuracy}")
    assert accuracy.precision >= 0.99
    assert accuracy.hard_negatives_merged == 0
    assert accuracy.f1 >= 0.99  # 1.000 on both when written (0.987 and 0.983 before)


names = st.sampled_from(
    ["Siti", "Siti Aminah", "Wa Ode Siti", "By. Ny. Siti", "Stii", "Muhammad Rizky",
     "Muhammad Rizal", "La Ode Hasan", "Hasan", "Budi Santoso", ""]
)  # fmt: skip
records = st.builds(
    rec,
    names,
    birth_date=st.one_of(st.none(), st.dates(date(1940, 1, 1), date(2026, 1, 1))),
    gender=st.sampled_from([None, "male", "female"]),
    nik=st.sampled_from([None, "7472014508900001", "7472014508900002", "7472015509910007"]).map(
        lambda v: parse_nik(v) if v else None
    ),
    nik_ibu=st.sampled_from([None, "7472014508900001"]),
    phones=st.sampled_from([frozenset(), frozenset({"81234567890"}), frozenset({"81200000000"})]),
    kelurahan=st.sampled_from([None, "7472011001", "7472011002"]),
    multiple_birth=st.sampled_from([None, 0, 1, 2]),
)


@settings(max_examples=200, deadline=None)
@given(records, records)
def test_scoring_is_symmetric(a, b):
    assert compare(a, b).levels == compare(b, a).levels
    assert rules(a, b, compare(a, b)) == rules(b, a, compare(b, a))
    one, two = decide(model(), a, b), decide(model(), b, a)
    assert (one.band, one.reasons) == (two.band, two.reasons)
    assert one.probability == pytest.approx(two.probability)


@settings(max_examples=200, deadline=None)
@given(records, records)
def test_a_forbidden_pair_is_never_a_link(a, b):
    d = decide(model(), a, b)
    if rules(a, b, compare(a, b))[0]:
        assert d.band == NO_LINK


def test_an_oversized_block_is_not_scored():
    crowd = [
        rec(
            "",
            nik=None,
            phones=frozenset({"81234567890"}),
            kelurahan=None,
            birth_date=date(1950 + i, 1, 1),
        )
        for i in range(5)
    ]
    assert len(candidate_pairs(crowd, max_block=5)) == 10  # one phone block of five
    assert candidate_pairs(crowd, max_block=4) == set()


def test_token_frequencies_count_name_tokens_not_prefixes_or_placeholders():
    from fhirhub.mpi.score import token_frequencies

    tf, floor = token_frequencies(
        [rec("Wa Ode Siti"), rec("Siti Aminah"), rec("La Hasan"), rec("By. Ny. Siti")]
    )
    assert tf["SITI"] == pytest.approx(2 / 4) and tf["AMINA"] == pytest.approx(
        1 / 4
    )  # spelling keys
    assert "WA" not in tf and "ODE" not in tf and "LA" not in tf
    assert floor == pytest.approx(1 / 4)


def test_shared_addresses_tell_households_from_personal_addresses():
    from fhirhub.mpi.score import shared_addresses

    home = {"street": "JL MURHUM NO 9", "kelurahan": "7472011001"}
    family = [
        rec("La Ode Hasan", birth_date=date(1970, 1, 5), **home),
        rec("Wa Ode Siti", birth_date=date(1975, 6, 7), **home),
        rec("Budi", birth_date=date(2001, 3, 9), **home),
    ]
    assert shared_addresses(family) == 1.0  # every pair plainly two people
    one_person = [rec("Siti Aminah", **home), rec("Siti Aminah", **home)]
    assert shared_addresses(one_person) == 0.0


def test_where_addresses_are_personal_an_agreeing_address_is_personal_evidence():
    # A given name replaced and the identifier different, the rest agreeing: a household
    # (twins) where addresses are shared, one person where each address is one person's.
    a = rec("Amelia Ryan", nik=None, phones=frozenset(), kelurahan=None, street="35 SIDAWAY ST",
            postcode="3184", other_ids=(("urn:ssn", "1613259"),))  # fmt: skip
    b = replace(a, name=parse_name("Edward Ryan"), other_ids=(("urn:ssn", "4392917"),))
    c = compare(a, b)
    assert "twins" in rules(a, b, c, households=True)[0]
    assert rules(a, b, c, households=False) == ([], [])
    personal = replace(model(), shared_addresses=0.0)
    assert decide(personal, a, b).band == LINK
    assert decide(model(), a, b).band == NO_LINK  # the default reads addresses as households'


def test_trained_lambda_is_of_two_random_records():
    syllables = ["ba", "di", "ku", "me", "so", "ra", "ti", "lo", "na", "we"]
    families = ["Basri", "Tamrin", "Halim", "Yusuf", "Rahman", "Saleh", "Umar"]
    people = [
        rec(f"{syllables[i % 10]}{syllables[i // 10 % 10]}{syllables[i // 100]}n "
            f"{families[i % 7]}", nik=None, birth_date=date(1950 + i % 60, 1 + i % 12, 1 + i % 28),
            phones=frozenset({f"81{i:09d}"}), kelurahan=f"747201{1000 + i % 40}")
        for i in range(200)
    ]  # fmt: skip
    mo = train(people + people[:50])  # 50 duplicates among 250 records
    assert mo.prior == pytest.approx(50 / (250 * 249 / 2), rel=0.5)


def test_two_placeholders_of_one_mother_born_apart_are_siblings():
    mother = "7472046810970001"
    first = rec("Bayi Ny. Wa Ima", nik=None, nik_ibu=mother, birth_date=date(2024, 7, 31),
                multiple_birth=0)  # fmt: skip
    second = replace(first, name=parse_name("By Ny Wa Ima"), birth_date=date(2026, 4, 29),
                     gender="male")  # fmt: skip
    assert "siblings" in forbidden(first, second)
    assert decide(model(), first, second).band == NO_LINK
    # The same child written twice, its date mistyped: not forbidden.
    assert forbidden(first, replace(first, birth_date=date(2024, 7, 13))) == []


def test_where_addresses_are_personal_a_shared_name_token_is_personal_evidence():
    # A given name replaced (Amelia -> Edward Ryan), born the same day, other ids: a household's
    # two people where addresses are shared; one person where addresses are one person's.
    a = rec("Amelia Ryan", nik=None, phones=frozenset(), kelurahan=None, street=None,
            other_ids=(("urn:ssn", "1613259"),))  # fmt: skip
    b = replace(a, name=parse_name("Edward Ryan"), other_ids=(("urn:ssn", "4392917"),))
    c = compare(a, b)
    assert "no-identifier-weak-identity" in rules(a, b, c, households=True)[1]
    assert rules(a, b, c, households=False) == ([], [])


def test_lambda_falls_as_the_index_grows():
    """Matches grow with the records, pairs with their square: a model estimated on a small
    city must not be as sure at a million records."""
    small = model()
    small.records = 1001
    assert small.at_size(500) is small  # never raised above what was estimated
    big = small.at_size(1_000_001)
    assert big.prior == pytest.approx(small.prior / 1000)
    assert big.records == 1_000_001
    assert type(small).from_json(big.to_json()) == big
