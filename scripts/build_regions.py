"""Build terminology/regions/baubau.json: Kota Baubau's kecamatan and kelurahan with their
Kemendagri codes, and the working areas of its 17 Puskesmas.

Source of the region codes: section E of ../shared/reference/national-apis.md, which transcribes
Kepmendagri No 300.2.2-2138 Tahun 2025 (the `wilayah.sql` dataset). Population per kecamatan:
BPS 2015 (same reference folder, indicators.md section 7). The six Puskesmas whose real names are
unknown, the working areas and the facility codes are synthetic and flagged as such.

Run from the repository root:  python scripts/build_regions.py [path/to/national-apis.md]
The output is committed; nothing reads ../shared at run time.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "reference" / "national-apis.md"
OUT = ROOT / "terminology" / "regions" / "baubau.json"

# BPS 2015, "Population by kecamatan" (reference/indicators.md section 7).
POPULATION_2015 = {
    "Wolio": 42862,
    "Batupoaro": 29291,
    "Murhum": 21793,
    "Kokalukuna": 18929,
    "Betoambari": 18433,
    "Bungi": 8030,
    "Sorawolio": 8025,
    "Lea-Lea": 7514,
}

# (name, kecamatan, kelurahan of its working area, known name?, inpatient?)
# Names marked known=True appear in public reports; the rest are placeholders named after a
# kelurahan of their area. All working areas are synthetic (the real mapping is not public).
PUSKESMAS = [
    ("Katobengke", "Betoambari", ["Katobengke", "Waborobo"], True, False),
    ("Betoambari", "Betoambari", ["Sulaa", "Labalawa"], True, False),
    ("Lipu", "Betoambari", ["Lipu"], False, False),
    ("Wolio", "Wolio", ["Wale", "Batulo", "Kadolo Katapi"], True, False),
    ("Bataraguru", "Wolio", ["Bataraguru", "Wangkanapi"], True, False),
    ("Bukit Wolio Indah", "Wolio", ["Bukit Wolio Indah"], True, False),
    ("Tomba", "Wolio", ["Tomba"], False, False),
    ("Sorawolio", "Sorawolio", ["Kaisabu Baru", "Karya Baru", "Gonda Baru", "Bugi"], True, True),
    ("Kampeonaho", "Bungi", ["Kampeonaho", "Ngkaring Karing", "Tampuna"], True, False),
    ("Liabuku", "Bungi", ["Liabuku", "Waliabuku"], False, False),
    ("Kadolomoko", "Kokalukuna", ["Kadolomoko", "Kadolo", "Waruruma"], True, False),
    ("Liwuto", "Kokalukuna", ["Liwuto", "Sukanaeyo", "Lakologou"], False, False),
    ("Wajo", "Murhum", ["Wajo", "Lamangga", "Tanganapada"], True, True),
    ("Melai", "Murhum", ["Melai", "Baadia"], True, False),
    (
        "Lowu-Lowu",
        "Lea-Lea",
        ["Lowu-Lowu", "Kalia-Lia", "Palabusa", "Kolese", "Kantalai"],
        True,
        False,
    ),
    ("Wameo", "Batupoaro", ["Wameo", "Bonebone", "Tarafu"], False, False),
    ("Nganganaumala", "Batupoaro", ["Nganganaumala", "Kaobula", "Lanto"], False, False),
]


def parse_section_e(text: str) -> list[dict]:
    section = text.split("## E. Kota Baubau region codes", 1)[1].split("\n## ", 1)[0]
    row = re.compile(r"^\| (?P<kec>[^|(]+?) \((?P<code>74\.72\.\d\d)\) \| (?P<kels>[^|]+) \|$")
    kel = re.compile(r"(?P<name>[A-Za-z' -]+?) (?P<code>74\.72\.\d\d\.\d{4})")
    out = []
    for line in section.splitlines():
        m = row.match(line.strip())
        if not m:
            continue
        villages = [
            {"code": k["code"].replace(".", ""), "name": k["name"].strip()}
            for k in kel.finditer(m["kels"])
        ]
        out.append(
            {
                "code": m["code"].replace(".", ""),
                "name": m["kec"].strip(),
                "population_2015": POPULATION_2015[m["kec"].strip()],
                "kelurahan": villages,
            }
        )
    return out


def build(source: Path) -> dict:
    kecamatan = parse_section_e(source.read_text(encoding="utf-8"))
    assert len(kecamatan) == 8, len(kecamatan)
    by_name = {v["name"]: v["code"] for k in kecamatan for v in k["kelurahan"]}
    assert len(by_name) == 43, len(by_name)
    kec_code = {k["name"]: k["code"] for k in kecamatan}
    puskesmas = []
    covered: list[str] = []
    for i, (name, kec, area, known, inpatient) in enumerate(PUSKESMAS, start=1):
        codes = [by_name[a] for a in area]
        covered += codes
        puskesmas.append(
            {
                "code": f"PKM{i:02d}",
                "name": f"Puskesmas {name}",
                "kecamatan": kec_code[kec],
                "kelurahan": codes,
                "name_known": known,
                "inpatient": inpatient,
            }
        )
    assert sorted(covered) == sorted(by_name.values()), "every kelurahan in exactly one area"
    return {
        "source": (
            "Kepmendagri No 300.2.2-2138 Tahun 2025 (wilayah dataset), via "
            "shared/reference/national-apis.md section E; population per kecamatan: BPS 2015"
        ),
        "synthetic": (
            "Puskesmas codes, working areas and the names with name_known=false are synthetic "
            "placeholders for fhirhub's test city, not official data"
        ),
        "province": {"code": "74", "name": "Sulawesi Tenggara"},
        "city": {"code": "7472", "name": "Kota Baubau"},
        "kecamatan": kecamatan,
        "puskesmas": puskesmas,
        "rsud": {"code": "RSUD01", "name": "RSUD Kota Baubau", "kecamatan": kec_code["Wolio"]},
    }


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    data = build(source)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"wrote {OUT.relative_to(ROOT)}: {len(data['kecamatan'])} kecamatan, "
        f"{sum(len(k['kelurahan']) for k in data['kecamatan'])} kelurahan, "
        f"{len(data['puskesmas'])} puskesmas"
    )


if __name__ == "__main__":
    main()
