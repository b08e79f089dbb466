"""Every RSUD HL7 v2 message parses with hl7apy; Khanza rows follow the documented tables."""

from __future__ import annotations

import csv
from pathlib import Path

from hl7apy.parser import parse_message


def test_every_hl7_message_parses(small_city_dir: Path) -> None:
    n = 0
    kinds = set()
    for f in sorted((small_city_dir / "rsud" / "hl7v2").glob("*.hl7")):
        for raw in f.read_bytes().decode().split("\n"):
            if not raw:
                continue
            m = parse_message(raw)
            kinds.add(m.msh.msh_9.to_er7())
            pid = raw.split("\rPID|", 1)[1].split("\r")[0].split("|")
            mrn = pid[2]  # PID-3
            assert mrn and mrn in m.to_er7()
            assert pid[29] in ("Y", "N") and len(pid) == 30  # PID-30 death indicator last
            n += 1
    assert n > 20
    assert {"ADT^A04^ADT_A01", "ORU^R01^ORU_R01"} <= kinds


def test_khanza_tables_link_up(small_city_dir: Path) -> None:
    k = small_city_dir / "rsud" / "khanza"

    def rows(name: str) -> list[dict]:
        with (k / f"{name}.csv").open() as fh:
            return list(csv.DictReader(fh))

    pasien = {r["no_rkm_medis"] for r in rows("pasien")}
    reg = rows("reg_periksa")
    assert reg and all(r["no_rkm_medis"] in pasien for r in reg)
    assert all(r["status_lanjut"] in ("Ralan", "Ranap") for r in reg)
    no_rawat = {r["no_rawat"] for r in reg}
    assert all(r["no_rawat"] in no_rawat for r in rows("diagnosa_pasien"))
    kel = {r["kd_kel"] for r in rows("kelurahan")}
    assert all(r["kd_kel"] in kel for r in rows("pasien"))
    assert len(kel) == 43


def test_registration_numbers_are_unique(small_city_dir: Path) -> None:
    with (small_city_dir / "rsud" / "khanza" / "reg_periksa.csv").open() as fh:
        no_rawat = [r["no_rawat"] for r in csv.DictReader(fh)]
    assert len(no_rawat) == len(set(no_rawat))
