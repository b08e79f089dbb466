"""The non-Puskesmas sources, each in its own format (national-apis.md B, C, A):
RSUD → HL7 v2 messages and rows of SIMRS Khanza tables; BPJS → VClaim and P-Care payloads;
SATUSEHAT → NDJSON of the resources the national platform holds, keyed by IHS number."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson

from . import fhir
from .city import IHS, NIK, Facility
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


JNS_PESERTA = (
    ("21", "PBI (APBN)"),
    ("22", "PBI (APBD)"),
    ("13", "PEGAWAI SWASTA"),
    ("3", "PNS DAERAH"),
    ("15", "PENERIMA PENSIUN PNS"),
    ("14", "PEKERJA MANDIRI"),
)
OK = {"code": "200", "message": "OK"}
KELUHAN = {
    "visit": "Keluhan umum",
    "ncd": "Kontrol rutin",
    "anc": "Pemeriksaan kehamilan",
    "growth": "Penimbangan balita",
    "imm": "Imunisasi",
    "screening": "Skrining PTM",
    "school": "Penjaringan anak sekolah",
    "tb": "Batuk lebih dari 2 minggu",
    "lab": "Pemeriksaan laboratorium",
    "kn": "Kunjungan neonatal",
    "postnatal": "Kunjungan nifas",
    "delivery": "Persalinan",
    "birth": "Bayi baru lahir",
    "abortion": "Perdarahan kehamilan",
}


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


# --- BPJS -------------------------------------------------------------------------------------
def _jenis(p: Person) -> tuple[str, str]:
    return JNS_PESERTA[zlib.crc32(str(p.pid).encode()) % len(JNS_PESERTA)]


def _umur(b: date, on: date) -> str:
    y = age_years(b, on)
    m = (on.year - b.year) * 12 + on.month - b.month - (on.day < b.day) - 12 * y
    return f"{y} tahun ,{m} bulan ,{abs(on.day - b.day)} hari"


def vclaim_peserta(sc: SynthCity, p: Person, rec: Record, on: date) -> dict:
    fac = sc.city.puskesmas_of(p.kelurahan)
    kode, ket = _jenis(p)
    kelas = "3" if kode in ("21", "22") else "2"
    return {
        "metaData": OK,
        "response": {
            "peserta": {
                "cob": {"nmAsuransi": None, "noAsuransi": None, "tglTAT": None, "tglTMT": None},
                "hakKelas": {
                    "kode": kelas,
                    "keterangan": f"KELAS {'III' if kelas == '3' else 'II'}",
                },
                "informasi": {"dinsos": None, "noSKTM": None, "prolanisPRB": None},
                "jenisPeserta": {"kode": kode, "keterangan": ket},
                "mr": {"noMR": None, "noTelepon": rec.phone},
                "nama": rec.name,
                "nik": rec.nik,
                "noKartu": rec.value,
                "pisa": "1",
                "provUmum": {"kdProvider": fac.ppk, "nmProvider": fac.name.upper()},
                "sex": "L" if rec.sex == "male" else "P",
                "statusPeserta": {"kode": "0", "keterangan": "AKTIF"},
                "tglCetakKartu": "2019-03-01",
                "tglLahir": rec.birth.isoformat(),
                "tglTAT": "2099-12-31",
                "tglTMT": "2019-01-01",
                "umur": {
                    "umurSaatPelayanan": _umur(p.birth, on),
                    "umurSekarang": _umur(p.birth, sc.today),
                },
            }
        },
    }


def sep_payloads(
    sc: SynthCity, p: Person, idx: int, e: Encounter, rec: Record, mrn: str, n: int
) -> tuple[dict, dict]:
    rsud = sc.city.rsud
    home = sc.city.puskesmas_of(p.kelurahan)
    d = e.start.date()
    inpatient = e.klass == "IMP"
    poli = poli_of(e)
    no_sep = f"{rsud.ppk}{d:%m%y}V{n % 10**6:06d}"
    no_rujukan = f"{home.ppk}{d:%m%y}Y{(n * 7) % 10**6:06d}"
    kode, ket = _jenis(p)
    kelas = "3" if kode in ("21", "22") else "2"
    t_sep = {
        "noKartu": rec.value,
        "tglSep": d.isoformat(),
        "ppkPelayanan": rsud.ppk,
        "jnsPelayanan": "1" if inpatient else "2",
        "klsRawat": {
            "klsRawatHak": kelas,
            "klsRawatNaik": "",
            "pembiayaan": "",
            "penanggungJawab": "",
        },
        "noMR": mrn,
        "rujukan": {
            "asalRujukan": "1",
            "tglRujukan": (d - timedelta(days=1)).isoformat(),
            "noRujukan": no_rujukan,
            "ppkRujukan": home.ppk,
        },
        "catatan": "",
        "diagAwal": e.dx[0],
        "poli": {"tujuan": "" if inpatient else poli[0], "eksekutif": "0"},
        "cob": {"cob": "0"},
        "katarak": {"katarak": "0"},
        "jaminan": {
            "lakaLantas": "0",
            "noLP": "",
            "penjamin": {
                "tglKejadian": "",
                "keterangan": "",
                "suplesi": {
                    "suplesi": "0",
                    "noSepSuplesi": "",
                    "lokasiLaka": {"kdPropinsi": "", "kdKabupaten": "", "kdKecamatan": ""},
                },
            },
        },
        "tujuanKunj": "0",
        "flagProcedure": "",
        "kdPenunjang": "",
        "assesmentPel": "",
        "skdp": {"noSurat": "", "kodeDPJP": ""},
        "dpjpLayan": "" if inpatient else "D001",
        "noTelp": rec.phone or "",
        "user": "khanza",
    }
    response = {
        "metaData": OK,
        "response": {
            "sep": {
                "noSep": no_sep,
                "tglSep": d.isoformat(),
                "jnsPelayanan": "R.Inap" if inpatient else "R.Jalan",
                "kdPoli": poli[0],
                "poli": poli[1],
                "poliEksekutif": "0",
                "kelasRawat": f"Kelas {kelas}",
                "noRujukan": no_rujukan,
                "diagnosa": f"{e.dx[0]} - {e.dx[0]}",
                "catatan": "",
                "penjamin": None,
                "tujuanKunj": "0",
                "flagProcedure": "",
                "kdPenunjang": "",
                "assestmenPel": "",
                "informasi": {"dinsos": None, "eSEP": "False", "noSKTM": None, "prolanisPRB": None},
                "peserta": {
                    "asuransi": None,
                    "hakKelas": f"Kelas {kelas}",
                    "jnsPeserta": ket,
                    "kelamin": "Laki-Laki" if rec.sex == "male" else "Perempuan",
                    "nama": rec.name,
                    "noKartu": rec.value,
                    "noMr": mrn,
                    "tglLahir": rec.birth.isoformat(),
                },
            }
        },
    }
    return {"request": {"t_sep": t_sep}}, response


def pcare_peserta(sc: SynthCity, p: Person, rec: Record) -> dict:
    fac = sc.city.puskesmas_of(p.kelurahan)
    kode, ket = _jenis(p)
    kelas = "3" if kode in ("21", "22") else "2"
    return {
        "metaData": {"message": "OK", "code": 200},
        "response": {
            "noKartu": rec.value,
            "nama": rec.name,
            "sex": "L" if rec.sex == "male" else "P",
            "tglLahir": rec.birth.strftime("%d-%m-%Y"),
            "tglMulaiAktif": "01-01-2019",
            "noKTP": rec.nik or "",
            "noHP": rec.phone or "",
            "kdProviderPst": {"kdProvider": fac.ppk, "nmProvider": fac.name.upper()},
            "kdProviderGigi": {"kdProvider": None, "nmProvider": None},
            "jnsKelas": {"kode": kelas, "nama": f"KELAS {'III' if kelas == '3' else 'II'}"},
            "jnsPeserta": {"kode": kode, "nama": ket},
            "asuransi": {"noAsuransi": None, "nmAsuransi": None},
            "pstProl": "HT" if "I10" in p.chronic else ("DM" if "E11.9" in p.chronic else ""),
            "pstPrb": "",
        },
    }


def pcare_kunjungan(p: Person, e: Encounter, fac: Facility) -> dict:
    d = e.start.date()
    vals = {o[0]: o[1] for o in e.obs}
    dias = next((e.obs[i + 1][1] for i, o in enumerate(e.obs) if o[0] == "85354-9"), 0)
    dx = [*e.dx, None, None]
    return {
        "noKunjungan": None,
        "noKartu": p.bpjs,
        "tglDaftar": d.strftime("%d-%m-%Y"),
        "kdPoli": "003" if e.kind in ("anc", "kn", "imm", "growth") else "001",
        "keluhan": KELUHAN.get(e.kind, "Keluhan umum"),
        "kdSadar": "01",
        "sistole": int(vals.get("85354-9", 0)),
        "diastole": int(dias),
        "beratBadan": vals.get("29463-7", 0),
        "tinggiBadan": vals.get("8302-2", vals.get("8306-3", 0)),
        "respRate": 0,
        "heartRate": 0,
        "lingkarPerut": 0,
        "terapi": "",
        "kdStatusPulang": "3",
        "tglPulang": d.strftime("%d-%m-%Y"),
        "kdDokter": f"{fac.code}-1",
        "kdDiag1": dx[0],
        "kdDiag2": dx[1],
        "kdDiag3": dx[2],
        "kdPoliRujukInternal": None,
        "rujukLanjut": None,
        "kdTacc": -1,
        "alasanTacc": None,
    }


def task_bpjs(sc: SynthCity, out: Path) -> int:
    from .writer import _write

    rsud = sc.city.rsud
    v_peserta, sep_req, sep_res, p_peserta, kunj = [], [], [], [], []
    n = 0
    for p in sc.persons:
        rec = sc.bpjs_records.get(p.pid)
        if rec is None:
            continue
        rsud_events = [(i, e) for i, e in enumerate(p.events) if e.facility == rsud.code]
        pkm_events = [(i, e) for i, e in enumerate(p.events) if e.facility != rsud.code]
        if rsud_events:
            v_peserta.append(vclaim_peserta(sc, p, rec, rsud_events[0][1].start.date()))
            for i, e in rsud_events:
                n += 1
                mrn_rec = sc.records[sc.record_key(p, e)]
                req, res = sep_payloads(sc, p, i, e, rec, mrn_rec.value, n)
                sep_req.append(req)
                sep_res.append(res)
        if pkm_events:
            p_peserta.append(pcare_peserta(sc, p, rec))
            for i, e in pkm_events:
                if (p.pid * 31 + i) % 10 < 6:  # 60% of Puskesmas visits are bridged to P-Care
                    kunj.append(pcare_kunjungan(p, e, sc.city.facility(e.facility)))

    def nd(rows: list[dict]) -> bytes:
        return b"".join(orjson.dumps(r) + b"\n" for r in rows)

    size = _write(out / "bpjs" / "vclaim" / "peserta.ndjson", nd(v_peserta))
    size += _write(out / "bpjs" / "vclaim" / "sep_insert_request.ndjson", nd(sep_req))
    size += _write(out / "bpjs" / "vclaim" / "sep_insert_response.ndjson", nd(sep_res))
    size += _write(out / "bpjs" / "pcare" / "peserta.ndjson", nd(p_peserta))
    size += _write(out / "bpjs" / "pcare" / "kunjungan.ndjson", nd(kunj))
    return size


# --- SATUSEHAT --------------------------------------------------------------------------------
def task_satusehat_patients(sc: SynthCity, out: Path) -> int:
    from .writer import _write

    lines = []
    for f in sc.city.facilities:
        lines.append(
            orjson.dumps(
                {
                    "resourceType": "Organization",
                    "id": f.org_id,
                    "identifier": [
                        {
                            "use": "official",
                            "system": "http://sys-ids.kemkes.go.id/organization/1000000",
                            "value": f.code,
                        }
                    ],
                    "active": True,
                    "name": f.name,
                }
            )
        )
    size = _write(out / "satusehat" / "Organization.ndjson", b"".join(x + b"\n" for x in lines))
    lines = []
    for p in sc.persons:
        rec = sc.ss_records.get(p.pid)
        if rec is None:
            continue
        died = p.death if any(e.died for e in p.events) else None
        lines.append(orjson.dumps(fhir.satusehat_patient(rec, p, sc.city, died)))
    return size + _write(out / "satusehat" / "Patient.ndjson", b"".join(x + b"\n" for x in lines))


def task_satusehat(sc: SynthCity, out: Path, code: str) -> int:
    """The synced encounters of one facility, as SATUSEHAT holds them."""
    from .writer import _write

    fac = sc.city.facility(code)
    files: dict[str, list[bytes]] = defaultdict(list)
    prefix = f"{zlib.crc32(f'{sc.seed}/satusehat/{code}'.encode()):08x}"
    n = 0

    def new_id() -> str:
        nonlocal n
        n += 1
        return (
            f"{prefix}-{n >> 32 & 0xFFFF:04x}-4{n >> 20 & 0xFFF:03x}-a{n >> 8 & 0xFFF:03x}-{n:012x}"
        )

    org = {"reference": f"Organization/{fac.org_id}", "display": fac.name}
    meta = {"source": f"Organization/{fac.org_id}"}
    pract = fhir.practitioner_ids(fac)[0]
    for pid in sc.visitors.get(code, ()):
        p = sc.persons[pid]
        rec = sc.ss_records.get(pid)
        if rec is None:
            continue
        subject = f"Patient/{rec.value}"
        for idx, e in enumerate(p.events):
            if e.facility != code or (p.pid, idx) not in sc.synced:
                continue
            res = fhir.encounter_resources(
                e, fac, sc.encounter_value(p, idx, e, fac), subject, new_id, fhir.utc, pract, False
            )
            enc_id = res[0][0]
            for rid, r in res:
                r["id"] = rid
                r["meta"] = meta
                rtype = r["resourceType"]
                if rtype == "Encounter":
                    r["serviceProvider"] = org
                    for d in r.get("diagnosis", ()):
                        d["condition"] = {"reference": f"Condition/{d['condition']['reference']}"}
                else:
                    r["encounter"] = {"reference": f"Encounter/{enc_id}"}
                files[rtype].append(orjson.dumps(r))
    size = 0
    for rtype in sorted(files):
        size += _write(
            out / "satusehat" / code / f"{rtype}.ndjson", b"".join(x + b"\n" for x in files[rtype])
        )
    return size


def tasks(sc: SynthCity) -> list[tuple[str, tuple]]:
    out: list[tuple[str, tuple]] = [("satusehat", (f.code,)) for f in sc.city.facilities]
    return [*out, ("rsud", ()), ("bpjs", ()), ("satusehat_patients", ())]


TASKS: dict[str, Callable[..., int]] = {
    "rsud": task_rsud,
    "bpjs": task_bpjs,
    "satusehat": task_satusehat,
    "satusehat_patients": task_satusehat_patients,
}
__all__ = ["IHS", "NIK", "TASKS", "tasks"]
