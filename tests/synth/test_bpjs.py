"""BPJS payloads match the shapes of national-apis.md B.3–B.5 (field names and nesting)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

ENVELOPE = {"metaData": {"code": None, "message": str}, "response": None}
# Shapes as field trees: a dict lists the keys that must be present (extra keys are errors),
# a type checks a leaf, None accepts anything.
VCLAIM_PESERTA = {
    "peserta": {
        "cob": {"nmAsuransi": None, "noAsuransi": None, "tglTAT": None, "tglTMT": None},
        "hakKelas": {"kode": str, "keterangan": str},
        "informasi": {"dinsos": None, "noSKTM": None, "prolanisPRB": None},
        "jenisPeserta": {"kode": str, "keterangan": str},
        "mr": {"noMR": None, "noTelepon": None},
        "nama": str,
        "nik": None,
        "noKartu": str,
        "pisa": str,
        "provUmum": {"kdProvider": str, "nmProvider": str},
        "sex": str,
        "statusPeserta": {"kode": str, "keterangan": str},
        "tglCetakKartu": str,
        "tglLahir": str,
        "tglTAT": str,
        "tglTMT": str,
        "umur": {"umurSaatPelayanan": str, "umurSekarang": str},
    }
}
T_SEP = {
    "request": {
        "t_sep": {
            "noKartu": str,
            "tglSep": str,
            "ppkPelayanan": str,
            "jnsPelayanan": str,
            "klsRawat": {
                "klsRawatHak": str,
                "klsRawatNaik": str,
                "pembiayaan": str,
                "penanggungJawab": str,
            },
            "noMR": str,
            "rujukan": {"asalRujukan": str, "tglRujukan": str, "noRujukan": str, "ppkRujukan": str},
            "catatan": str,
            "diagAwal": str,
            "poli": {"tujuan": str, "eksekutif": str},
            "cob": {"cob": str},
            "katarak": {"katarak": str},
            "jaminan": {
                "lakaLantas": str,
                "noLP": str,
                "penjamin": {
                    "tglKejadian": str,
                    "keterangan": str,
                    "suplesi": {
                        "suplesi": str,
                        "noSepSuplesi": str,
                        "lokasiLaka": {"kdPropinsi": str, "kdKabupaten": str, "kdKecamatan": str},
                    },
                },
            },
            "tujuanKunj": str,
            "flagProcedure": str,
            "kdPenunjang": str,
            "assesmentPel": str,
            "skdp": {"noSurat": str, "kodeDPJP": str},
            "dpjpLayan": str,
            "noTelp": str,
            "user": str,
        }
    }
}
SEP_RESPONSE = {
    "sep": {
        "noSep": str,
        "tglSep": str,
        "jnsPelayanan": str,
        "kdPoli": str,
        "poli": str,
        "poliEksekutif": str,
        "kelasRawat": str,
        "noRujukan": str,
        "diagnosa": str,
        "catatan": str,
        "penjamin": None,
        "tujuanKunj": str,
        "flagProcedure": str,
        "kdPenunjang": str,
        "assestmenPel": str,
        "informasi": {"dinsos": None, "eSEP": None, "noSKTM": None, "prolanisPRB": None},
        "peserta": {
            "asuransi": None,
            "hakKelas": str,
            "jnsPeserta": str,
            "kelamin": str,
            "nama": str,
            "noKartu": str,
            "noMr": str,
            "tglLahir": str,
        },
    }
}
PCARE_PESERTA = {
    "noKartu": str,
    "nama": str,
    "sex": str,
    "tglLahir": str,
    "tglMulaiAktif": str,
    "noKTP": str,
    "noHP": str,
    "kdProviderPst": {"kdProvider": str, "nmProvider": str},
    "kdProviderGigi": {"kdProvider": None, "nmProvider": None},
    "jnsKelas": {"kode": str, "nama": str},
    "jnsPeserta": {"kode": str, "nama": str},
    "asuransi": {"noAsuransi": None, "nmAsuransi": None},
    "pstProl": str,
    "pstPrb": str,
}
PCARE_KUNJUNGAN = {
    "noKunjungan": None,
    "noKartu": str,
    "tglDaftar": str,
    "kdPoli": str,
    "keluhan": str,
    "kdSadar": str,
    "sistole": int,
    "diastole": int,
    "beratBadan": None,
    "tinggiBadan": None,
    "respRate": int,
    "heartRate": int,
    "lingkarPerut": int,
    "terapi": str,
    "kdStatusPulang": str,
    "tglPulang": str,
    "kdDokter": str,
    "kdDiag1": str,
    "kdDiag2": None,
    "kdDiag3": None,
    "kdPoliRujukInternal": None,
    "rujukLanjut": None,
    "kdTacc": int,
    "alasanTacc": None,
}


def check(value, shape, path: str = "$") -> None:
    if shape is None:
        return
    if isinstance(shape, dict):
        assert isinstance(value, dict), path
        assert set(value) == set(shape), f"{path}: {sorted(set(value) ^ set(shape))}"
        for k, s in shape.items():
            check(value[k], s, f"{path}.{k}")
    else:
        assert isinstance(value, shape), f"{path}: {value!r} is not {shape.__name__}"


def lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def test_vclaim_payloads(small_city_dir: Path) -> None:
    v = small_city_dir / "bpjs" / "vclaim"
    peserta = lines(v / "peserta.ndjson")
    assert peserta
    for p in peserta:
        check(p, ENVELOPE)
        assert p["metaData"]["code"] == "200"  # VClaim: a string
        check(p["response"], VCLAIM_PESERTA)
        assert re.fullmatch(r"\d{13}", p["response"]["peserta"]["noKartu"])
    for req in lines(v / "sep_insert_request.ndjson"):
        check(req, T_SEP)
    for res in lines(v / "sep_insert_response.ndjson"):
        check(res, ENVELOPE)
        check(res["response"], SEP_RESPONSE)
        no_sep = res["response"]["sep"]["noSep"]
        assert re.fullmatch(r"[0-9A-Z]{8}\d{4}V\d{6}", no_sep), no_sep  # 19 characters


def test_pcare_payloads(small_city_dir: Path) -> None:
    pc = small_city_dir / "bpjs" / "pcare"
    peserta = lines(pc / "peserta.ndjson")
    assert peserta
    for p in peserta:
        check(p, ENVELOPE)
        check(p["response"], PCARE_PESERTA)
    kunjungan = lines(pc / "kunjungan.ndjson")
    assert kunjungan
    for k in kunjungan:
        check(k, PCARE_KUNJUNGAN)
        assert re.fullmatch(r"\d\d-\d\d-\d{4}", k["tglDaftar"])
