"""The RSUD (the city hospital, SIMRS Khanza) as a source (national-apis.md C): HL7 v2
messages (ADT, and ORU for results) and rows of Khanza tables."""

from __future__ import annotations

import zlib
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from .errors import Record
from .generate import SynthCity
from .model import Encounter, Person
from .truth import age_years

POLI = {
    "AMB": ("INT", "Poli Penyakit Dalam"),
    "EMER": ("IGD", "Instalasi Gawat Darurat"),
    "IMP": ("RANAP", "Rawat Inap"),
}
POLI_BY_KIND = {
    "anc": ("OBG", "Poli Kandungan"),
    "delivery": ("OBG", "Poli Kandungan"),
    "abortion": ("OBG", "Poli Kandungan"),
    "birth": ("ANA", "Poli Anak"),
    "kn": ("ANA", "Poli Anak"),
}


def poli_of(e: Encounter) -> tuple[str, str]:
    """The RSUD clinic (kd_poli, name) of an encounter: by its kind, else by its class."""
    return POLI_BY_KIND.get(e.kind, POLI.get(e.klass, POLI["AMB"]))


def _hl7_escape(s: str) -> str:
    return (
        s.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y%m%d%H%M%S")


def _segment(name: str, fields: dict[int, str]) -> str:
    """An HL7 v2 segment: `name`, then its fields 1 .. the highest position in `fields`, each
    the value given for its position or empty."""
    return "|".join([name, *(fields.get(i, "") for i in range(1, max(fields) + 1))])


def _pid(rec: Record, p: Person, sc: SynthCity) -> str:
    ids = f"{rec.value}^^^RSUD01^MR"
    if rec.nik:
        ids += f"~{rec.nik}^^^DUKCAPIL^NNIDN"
    if rec.nik_ibu:
        ids += f"~{rec.nik_ibu}^^^DUKCAPIL^NNIDN-IBU"
    kel = sc.city.kelurahan_name(p.kelurahan)
    addr = f"{_hl7_escape(p.street)}^^Baubau^Sulawesi Tenggara^^ID^H^{_hl7_escape(kel)}"
    death = sc.deceased_at(p, "RSUD01")
    return _segment(
        "PID",
        {
            1: "1",
            3: ids,  # patient identifier list
            5: _hl7_escape(rec.name),
            7: rec.birth.strftime("%Y%m%d"),
            8: "M" if rec.sex == "male" else "F",
            11: addr,
            13: rec.phone or "",
            24: "Y" if p.multiple_birth else "",  # multiple birth indicator
            25: str(p.multiple_birth or ""),  # birth order
            29: death.strftime("%Y%m%d") if death else "",  # death date
            30: "Y" if death else "N",  # death indicator, the last field
        },
    )


def hl7_messages(sc: SynthCity, p: Person, idx: int, e: Encounter, rec: Record) -> list[str]:
    fac = sc.city.rsud
    no_rawat = sc.encounter_value(p, idx, e, fac)
    ctrl = f"{zlib.crc32(no_rawat.encode()):08X}"
    pclass = {"AMB": "O", "EMER": "E", "IMP": "I", "HH": "O"}[e.klass]
    pv1 = _segment(
        "PV1",
        {
            1: "1",
            2: pclass,
            3: f"{poli_of(e)[0]}^^^RSUD01",  # assigned location
            7: "D001^DOKTER^RSUD",  # attending doctor
            19: no_rawat,  # visit number
            36: "20" if e.died else "01",  # discharge disposition
            44: _ts(e.start),  # admitted
            45: _ts(e.end) if e.klass == "IMP" or e.died else "",  # discharged
        },
    )
    dg1 = [
        _segment("DG1", {1: str(i), 3: f"{c}^^I10", 5: _ts(e.start), 6: "A" if i == 1 else "F"})
        for i, c in enumerate(e.dx, start=1)
    ]
    pid = _pid(rec, p, sc)

    def msh(kind: str, trigger: str, n: int, at: datetime) -> str:
        struct = (
            "ADT_A01"
            if kind == "ADT" and trigger in ("A01", "A04")
            else ("ADT_A03" if kind == "ADT" else "ORU_R01")
        )
        return (
            f"MSH|^~\\&|KHANZA|RSUD01|FHIRHUB|DINKES7472|{_ts(at)}||{kind}^{trigger}^{struct}"
            f"|{ctrl}{n}|P|2.5"
        )

    def adt(trigger: str, n: int, at: datetime) -> str:
        return "\r".join([msh("ADT", trigger, n, at), f"EVN|{trigger}|{_ts(at)}", pid, pv1, *dg1])

    if e.klass == "IMP":
        msgs = [adt("A01", 1, e.start), adt("A03", 2, e.end)]
    else:
        msgs = [adt("A04", 1, e.start)]
    if e.obs:
        segs = [
            msh("ORU", "R01", 3, e.end),
            pid,
            pv1,
            _segment("ORC", {1: "RE", 2: no_rawat, 3: ctrl, 6: "CM"}),
            _segment(
                "OBR",
                {
                    1: "1",
                    2: no_rawat,
                    3: ctrl,
                    4: "LAB^Pemeriksaan^L",
                    7: _ts(e.start),  # observed
                    22: _ts(e.end),  # reported
                    25: "F",  # result status
                },
            ),
        ]
        results: list[tuple[str, str, str, str]] = []  # (value type, LOINC, value, UCUM unit)
        obs = e.obs
        i = 0
        while i < len(obs):
            code, value, unit = obs[i]
            i += 1
            if code == "85354-9":  # blood pressure: systolic and diastolic results
                dia = obs[i][1]
                i += 1
                results.append(("NM", "8480-6", str(int(value)), "mm[Hg]"))
                results.append(("NM", "8462-4", str(int(dia)), "mm[Hg]"))
            elif unit == "":
                res = "10828004^Positive^SCT" if value >= 0.5 else "260385009^Negative^SCT"
                results.append(("CE", code, res, ""))
            else:
                results.append(("NM", code, f"{value:g}", unit))
        for n, (vtype, loinc, shown, ucum) in enumerate(results, start=1):
            segs.append(
                _segment(
                    "OBX",
                    {
                        1: str(n),
                        2: vtype,
                        3: f"{loinc}^^LN",
                        5: shown,
                        6: f"{ucum}^^UCUM" if ucum else "",
                        11: "F",  # result status
                        14: _ts(e.start),  # observed
                    },
                )
            )
        msgs.append("\r".join(segs))
    return msgs


def task_rsud(sc: SynthCity, out: Path) -> int:
    fac = sc.city.rsud
    by_month: dict[str, list[tuple[datetime, str, int, str]]] = defaultdict(list)
    pasien, reg, diag = [], [], []
    seen_pen: set[str] = set()
    kel_index = {k[0]: i + 1 for i, k in enumerate(sc.city.kelurahan)}
    kec_index = {k[0]: i + 1 for i, k in enumerate(sc.city.kecamatan)}
    for pid in sc.visitors.get(fac.code, ()):
        p = sc.persons[pid]
        for newborn in (True, False):
            rec = sc.records.get((p.pid, fac.code, newborn))
            if rec is None:
                continue
            mine = [
                (i, e)
                for i, e in enumerate(p.events)
                if e.facility == fac.code and sc.record_key(p, e)[2] == newborn
            ]
            mother = sc.persons[p.mother] if p.mother is not None else None
            first = mine[0][1].start.date()
            pasien.append(
                (
                    rec.value,
                    rec.name,
                    rec.nik or "",
                    "L" if rec.sex == "male" else "P",
                    "BAUBAU",
                    rec.birth.isoformat(),
                    (mother.name.upper() if mother else "-"),
                    p.street.upper(),
                    "-",
                    "-",
                    {"M": "MENIKAH", "W": "JANDA"}.get(p.marital, "BELUM MENIKAH"),
                    "ISLAM"
                    if p.group in ("buton", "muslim")
                    else ("KRISTEN" if p.group == "christian" else "BUDHA"),
                    first.isoformat(),
                    rec.phone or "",
                    f"{age_years(p.birth, first)} Th",
                    "BPJ" if p.bpjs else "UMU",
                    p.bpjs or "",
                    kel_index[p.kelurahan],
                    kec_index[p.kelurahan[:6]],
                    1,
                    1,
                )
            )
            for idx, e in mine:
                no_rawat = sc.encounter_value(p, idx, e, fac)
                poli = poli_of(e)[0]
                reg.append(
                    (
                        no_rawat,
                        f"{idx % 999 + 1:03d}",
                        e.start.date().isoformat(),
                        e.start.strftime("%H:%M:%S"),
                        "D001",
                        rec.value,
                        poli,
                        "Meninggal" if e.died else "Sudah",
                        "Ranap" if e.klass == "IMP" else "Ralan",
                        "BPJ" if p.bpjs else "UMU",
                        age_years(p.birth, e.start.date()),
                        "Th",
                    )
                )
                for prio, code in enumerate(e.dx, start=1):
                    diag.append(
                        (no_rawat, code, "Ranap" if e.klass == "IMP" else "Ralan", prio, "Baru")
                    )
                    seen_pen.add(code)
                for m in hl7_messages(sc, p, idx, e, rec):
                    by_month[e.start.strftime("%Y-%m")].append((e.start, no_rawat, len(m), m))
    from .writer import _write, write_csv

    size = 0
    for month in sorted(by_month):
        msgs = sorted(by_month[month], key=lambda t: (t[0], t[1], t[3][:60]))
        size += _write(
            out / "rsud" / "hl7v2" / f"{month}.hl7",
            ("\n".join(m for *_, m in msgs) + "\n").encode(),
        )
    k = out / "rsud" / "khanza"
    size += write_csv(
        k / "pasien.csv",
        [
            "no_rkm_medis",
            "nm_pasien",
            "no_ktp",
            "jk",
            "tmp_lahir",
            "tgl_lahir",
            "nm_ibu",
            "alamat",
            "gol_darah",
            "pekerjaan",
            "stts_nikah",
            "agama",
            "tgl_daftar",
            "no_tlp",
            "umur",
            "kd_pj",
            "no_peserta",
            "kd_kel",
            "kd_kec",
            "kd_kab",
            "kd_prop",
        ],
        sorted(pasien),
    )
    size += write_csv(
        k / "reg_periksa.csv",
        [
            "no_rawat",
            "no_reg",
            "tgl_registrasi",
            "jam_reg",
            "kd_dokter",
            "no_rkm_medis",
            "kd_poli",
            "stts",
            "status_lanjut",
            "kd_pj",
            "umurdaftar",
            "sttsumur",
        ],
        sorted(reg),
    )
    size += write_csv(
        k / "diagnosa_pasien.csv",
        ["no_rawat", "kd_penyakit", "status", "prioritas", "status_penyakit"],
        sorted(diag),
    )
    size += write_csv(
        k / "penyakit.csv",
        ["kd_penyakit", "nm_penyakit", "status"],
        [(c, c, "Menular" if c[0] in "AB" else "Tidak Menular") for c in sorted(seen_pen)],
    )
    size += write_csv(
        k / "kelurahan.csv",
        ["kd_kel", "nm_kel"],
        [
            (i, n.upper())
            for code, i in kel_index.items()
            for c2, n, _ in sc.city.kelurahan
            if c2 == code
        ],
    )
    size += write_csv(
        k / "kecamatan.csv",
        ["kd_kec", "nm_kec"],
        [(kec_index[c], n.upper()) for c, n, _ in sc.city.kecamatan],
    )
    size += write_csv(k / "kabupaten.csv", ["kd_kab", "nm_kab"], [(1, "KOTA BAUBAU")])
    size += write_csv(k / "propinsi.csv", ["kd_prop", "nm_prop"], [(1, "SULAWESI TENGGARA")])
    size += write_csv(
        k / "penjab.csv", ["kd_pj", "png_jawab"], [("BPJ", "PIUTANG BPJS"), ("UMU", "UMUM")]
    )
    size += write_csv(
        k / "poliklinik.csv",
        ["kd_poli", "nm_poli"],
        sorted(set(POLI.values()) | set(POLI_BY_KIND.values())),
    )
    return size
