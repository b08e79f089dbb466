"""Lists sent to PostgreSQL as one separated text (``mpi.store.texts``/``ints``): the server
splits them back into exactly the values sent; blocking keys never hold the separator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhirhub.mpi import store
from fhirhub.mpi.features import blocking_keys, extract
from tests.conftest import postgres_url

# what a key or an id may hold: any character a FHIR string may (no C0 control but tab, LF, CR)
_CONTROLS = [chr(i) for i in range(32) if chr(i) not in "\t\n\r"]
_KEY = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters=_CONTROLS),
    min_size=1,
    max_size=40,
)


@pytest.fixture(scope="module")
def raw() -> Iterator[Any]:
    import psycopg

    url = postgres_url().replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(_KEY, max_size=30))
def test_texts_come_back_as_the_values_sent(raw: Any, values: list[str]):
    with raw.cursor(binary=True) as cur:
        got = cur.execute(f"SELECT {store.TEXTS}", (store.texts(values),)).fetchone()[0]
    assert got == values


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=30))
def test_ints_come_back_as_the_values_sent_nulls_too(raw: Any, values: list[int | None]):
    with raw.cursor(binary=True) as cur:
        got = cur.execute(f"SELECT {store.INTS}", (store.ints(values),)).fetchone()[0]
    assert got == values


def test_a_value_with_a_control_character_gives_no_blocking_key():
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:oid:1.2.3\x1f4", "value": "A1234567"},
            {"system": "urn:oid:1.2.3.5", "value": "B7654321"},
        ],
    }
    keys = blocking_keys(extract(patient))
    assert any("B7654321" in k for k in keys)
    assert not any(store.SEPARATOR in k for k in keys)
    assert not any("A1234567" in k for k in keys)
