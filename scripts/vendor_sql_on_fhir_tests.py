"""Copy the official SQL on FHIR v2 test suite into tests/views/sql_on_fhir_v2/.

Source: the test suite of the SQL on FHIR v2 implementation guide (HL7 / FHIR community,
https://github.com/FHIR/sql-on-fhir-v2, directory tests/), licensed MIT as stated by
../shared/README.md, as shipped in ../shared/sql-on-fhir-v2/. The copy is committed so the tests
never need ../shared; re-run this script when the shared suite is updated.
Run: python scripts/vendor_sql_on_fhir_tests.py [path/to/shared/sql-on-fhir-v2]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "sql-on-fhir-v2"
TARGET = ROOT / "tests" / "views" / "sql_on_fhir_v2"

NOTE = """# SQL on FHIR v2 test suite (vendored copy)

Origin: the official test suite of the SQL on FHIR v2 implementation guide,
https://github.com/FHIR/sql-on-fhir-v2 (directory `tests/`), as shipped in
`../shared/sql-on-fhir-v2/`.
Licence: MIT (as `../shared/README.md` states for this suite; the specification is an HL7/FHIR
community project). Copied unchanged by `scripts/vendor_sql_on_fhir_tests.py`; do not edit by hand.

Files: {count} JSON files, {cases} test cases.
"""


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    files = sorted(source.glob("*.json"))
    if not files:
        print(f"no JSON files in {source}", file=sys.stderr)
        return 1
    TARGET.mkdir(parents=True, exist_ok=True)
    cases = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)  # refuse to vendor a file that is not JSON
        cases += len(data.get("tests", [])) if isinstance(data, dict) else 0
        (TARGET / path.name).write_text(text, encoding="utf-8")
    (TARGET / "SOURCE.md").write_text(NOTE.format(count=len(files), cases=cases), encoding="utf-8")
    print(f"copied {len(files)} files ({cases} cases) to {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
