"""BPJS Kesehatan as a source (national-apis.md B): VClaim (participants, SEP of RSUD
visits) and P-Care (participants, Puskesmas visits) payloads."""

from __future__ import annotations

import zlib
from datetime import date, timedelta
from pathlib import Path

import orjson

from .city import Facility
from .errors import Record
from .generate import SynthCity
from .model import Encounter, Person
from .rsud import poli_of
from .truth import age_years

JNS_PESERTA = (
    ("21", "PBI (APBN)"),
    ("22", "PBI (APBD)"),
    ("13", "PEGAWAI SWASTA"),
    ("3", "PNS DAERAH"),
    ("15", "PENERIMA PENSIUN PNS"),
    ("14", "PEKERJA MANDIRI"),
)
OK = {"code": "200", "message": "OK"}
KELAS_NAME = {"3": "KELAS III", "2": "KELAS II"}
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


def _jenis(p: Person) -> tuple[str, str, str]:
    """A participant's type (code, name) and the ward class it entitles them to: 3 for PBI
    (contributions paid by the state), else 2."""
    kode, ket = JNS_PESERTA[zlib.crc32(str(p.pid).encode()) % len(JNS_PESERTA)]
    return kode, ket, "3" if kode in ("21", "22") else "2"


def _umur(b: date, on: date) -> str:
    y = age_years(b, on)
    m = (on.year - b.year) * 12 + on.month - b.month - (on.day < b.day) - 12 * y
    return f"{y} tahun ,{m} bulan ,{abs(on.day - b.day)} hari"


def vclaim_peserta(sc: SynthCity, p: Person, rec: Record, on: date) -> dict:
    fac = sc.city.puskesmas_of(p.kelurahan)
    kode, ket, kelas = _jenis(p)
    return {
        "metaData": OK,
        "response": {
            "peserta": {
                "cob": {"nmAsuransi": None, "noAsuransi": None, "tglTAT": None, "tglTMT": None},
                "hakKelas": {
                    "kode": kelas,
                    "keterangan": KELAS_NAME[kelas],
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
    _, ket, kelas = _jenis(p)
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
    kode, ket, kelas = _jenis(p)
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
            "jnsKelas": {"kode": kelas, "nama": KELAS_NAME[kelas]},
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
