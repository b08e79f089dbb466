from __future__ import annotations

from pathlib import Path

import pytest

from fhirhub.synth.generate import SynthCity, build
from fhirhub.synth.writer import write_city

SMALL = 300
SEED = 7


@pytest.fixture(scope="session")
def small_city() -> SynthCity:
    return build(SMALL, SEED)


@pytest.fixture(scope="session")
def small_city_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "city"
    write_city(build(SMALL, SEED), out, workers=1)
    return out
