"""Estimate fhirhub's shipped patient-index model (fhirhub/mpi/default_model.json).

The model is estimated WITHOUT labels (u from random pairs, m and lambda by EM; see
fhirhub/mpi/score.py) from the Patients of a synthetic city (`fhirhub synth`, seed 1), the
city the thresholds were chosen on. A running fhirhub replaces it with a model estimated from
its own records: `fhirhub mpi rebuild`.

    .venv/bin/python scripts/train_default_model.py [--persons 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from fhirhub.mpi.features import extract
from fhirhub.mpi.score import train
from fhirhub.synth.generate import build
from fhirhub.synth.writer import write_city, written_patients

OUT = Path(__file__).resolve().parents[1] / "fhirhub" / "mpi" / "default_model.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_city(build(args.persons, args.seed), Path(tmp), workers=1)
        records = [extract(p) for p in written_patients(Path(tmp))]
    model = train(records)
    OUT.write_text(json.dumps(json.loads(model.to_json()), indent=1, sort_keys=True) + "\n")
    print(f"{len(records)} records -> {OUT} (prior {model.prior:.4f})")


if __name__ == "__main__":
    main()
