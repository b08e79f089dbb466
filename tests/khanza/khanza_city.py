"""A SIMRS Khanza database on the real MariaDB, filled with the synthetic city's RSUD rows.

The city's generator writes the RSUD's visits as Khanza rows (``fhirhub.synth.rsud``:
``rsud/khanza/*.csv``); these functions create a database with the Khanza schema subset
(``khanza_schema.sql``) and insert those rows, with the NOT NULL columns the generator does not
write filled as Khanza's forms fill them (``-``, 0). The city has no procedures; each inpatient
stay gets one (ICD-9-CM 89.03), each obstetric visit another (73.59, after it), so that
``prosedur_pasien`` is read too. Used by tests/khanza and bench/bench_khanza.py.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

SCHEMA = Path(__file__).with_name("khanza_schema.sql")
ADMIN_URL = os.environ.get("FHIRHUB_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/")

# Columns the generator leaves out, as a Khanza registration form fills them.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "penjab": {
        "nama_perusahaan": "-",
        "alamat_asuransi": "-",
        "no_telp": "-",
        "attn": "-",
        "status": "1",
    },
    "poliklinik": {"registrasi": 0, "registrasilama": 0, "status": "1"},
    "pasien": {
        "pnd": "-",
        "keluarga": "DIRI SENDIRI",
        "namakeluarga": "-",
        "pekerjaanpj": "-",
        "alamatpj": "-",
        "kelurahanpj": "-",
        "kecamatanpj": "-",
        "kabupatenpj": "-",
        "perusahaan_pasien": "-",
        "suku_bangsa": 1,
        "bahasa_pasien": 1,
        "cacat_fisik": 1,
        "email": "",
        "nip": "",
        "propinsipj": "-",
    },
    "reg_periksa": {
        "stts_daftar": "Lama",
        "status_bayar": "Sudah Bayar",
        "status_poli": "Lama",
        "biaya_reg": 0,
    },
}
ORDER = (
    "propinsi",
    "kabupaten",
    "kecamatan",
    "kelurahan",
    "penjab",
    "poliklinik",
    "dokter",
    "penyakit",
    "icd9",
    "pasien",
    "reg_periksa",
    "diagnosa_pasien",
    "prosedur_pasien",
)
PROCEDURES = {
    "Ranap": ("89.03", "Interview and evaluation, described as comprehensive"),
    "OBG": ("73.59", "Other manually assisted delivery"),
}


@dataclass
class KhanzaRows:
    """Rows per Khanza table, as inserted."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def visits(self) -> list[dict[str, Any]]:
        return sorted(self.tables["reg_periksa"], key=lambda r: r["no_rawat"])

    def of_visits(self, no_rawat: set[str]) -> KhanzaRows:
        """The rows of these visits only (their reg_periksa, diagnoses and procedures)."""
        out = {t: rows for t, rows in self.tables.items()}
        for t in ("reg_periksa", "diagnosa_pasien", "prosedur_pasien"):
            out[t] = [r for r in self.tables[t] if r["no_rawat"] in no_rawat]
        return KhanzaRows(out)

    def visit_part(self) -> KhanzaRows:
        """Only the visit tables (to insert after the master rows are in)."""
        return KhanzaRows(
            {t: self.tables[t] for t in ("reg_periksa", "diagnosa_pasien", "prosedur_pasien")}
        )


def city_rows(persons: int = 300, seed: int = 3) -> KhanzaRows:
    """The synthetic city's RSUD rows (``fhirhub synth``'s rsud/khanza tables)."""
    from fhirhub.synth.generate import build
    from fhirhub.synth.rsud import task_rsud

    sc = build(persons, seed)
    with tempfile.TemporaryDirectory() as tmp:
        task_rsud(sc, Path(tmp))
        folder = Path(tmp) / "rsud" / "khanza"
        tables = {}
        for path in folder.glob("*.csv"):
            with path.open(newline="") as f:
                tables[path.stem] = [dict(r) for r in csv.DictReader(f)]
    for table, rows in tables.items():
        for row in rows:
            for key, value in _DEFAULTS.get(table, {}).items():
                row.setdefault(key, value)
            for key, value in list(row.items()):
                if value == "" and key in ("no_tlp", "no_peserta", "no_ktp"):
                    row[key] = None if key != "no_tlp" else ""
    tables["dokter"] = [{"kd_dokter": "D001", "nm_dokter": "dr. RSUD", "jk": "L", "status": "1"}]
    procedures, icd9 = [], {}
    for reg in tables["reg_periksa"]:
        found = [PROCEDURES["Ranap"]] if reg["status_lanjut"] == "Ranap" else []
        if reg["kd_poli"] == "OBG":
            found.append(PROCEDURES["OBG"])
        for rank, (code, name) in enumerate(found, start=1):
            icd9[code] = {"kode": code, "deskripsi_panjang": name, "deskripsi_pendek": name[:40]}
            procedures.append(
                {
                    "no_rawat": reg["no_rawat"],
                    "kode": code,
                    "status": reg["status_lanjut"],
                    "prioritas": rank,
                }
            )
    tables["icd9"] = list(icd9.values())
    tables["prosedur_pasien"] = procedures
    return KhanzaRows(tables)


def create_database(name: str) -> str:
    """A new, empty database ``name`` on the server; its URL."""
    admin = create_engine(ADMIN_URL)
    try:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET latin1"))
    finally:
        admin.dispose()
    return ADMIN_URL.rstrip("/") + f"/{name}"


def drop_database(name: str) -> None:
    admin = create_engine(ADMIN_URL)
    try:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        admin.dispose()


def create_schema(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in SCHEMA.read_text().split("\n;\n"):
                lines = [x for x in statement.splitlines() if not x.startswith("--")]
                if "".join(lines).strip():
                    conn.execute(text("\n".join(lines)))
    finally:
        engine.dispose()


def insert(url: str, rows: KhanzaRows) -> None:
    """Insert the rows, masters before the rows that refer to them."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in ORDER:
                batch = rows.tables.get(table) or []
                if not batch:
                    continue
                columns = list(batch[0])
                names = ", ".join(f"`{c}`" for c in columns)
                values = ", ".join(f":{c}" for c in columns)
                conn.execute(text(f"INSERT INTO `{table}` ({names}) VALUES ({values})"), batch)
    finally:
        engine.dispose()


def execute(url: str, sql: str, **params: Any) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()
