"""Reference data of the synthetic city: regions (from terminology/regions/baubau.json) and the
facilities with the identifiers each source uses for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import orjson

REGIONS_FILE = Path(__file__).resolve().parents[2] / "terminology" / "regions" / "baubau.json"

# Identifier systems. Kemenkes systems from national-apis.md A.4; the MRN systems are fhirhub's
# own, one per facility (each clinic system numbers its own records).
NIK = "https://fhir.kemkes.go.id/id/nik"
NIK_IBU = "https://fhir.kemkes.go.id/id/nik-ibu"
IHS = "https://fhir.kemkes.go.id/id/ihs-number"
BPJS = "https://fhir.bpjs-kesehatan.go.id/id/no-kartu"
ADMIN_CODE = "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode"
SYNTH_BASE = "https://fhirhub.baubaukota.go.id"
LOCAL_DX = SYNTH_BASE + "/CodeSystem/diagnosa-lokal"
LOCAL_OBS = SYNTH_BASE + "/CodeSystem/pemeriksaan-lokal"


def mrn_system(code: str) -> str:
    return f"{SYNTH_BASE}/sid/mrn/{code.lower()}"


@dataclass(frozen=True, eq=False, slots=True)
class Facility:
    code: str  # PKM01..PKM17, RSUD01
    name: str
    kind: str  # puskesmas | rsud
    org_id: str  # SATUSEHAT Organization id (synthetic, numeric)
    ppk: str  # BPJS provider code, 8 characters (synthetic)
    kecamatan: str
    kelurahan: tuple[str, ...]  # working area (empty for the RSUD)
    address_kelurahan: str
    mrn_format: str  # str.format pattern taking n=<sequence>
    sync_rate: float  # share of its encounters also held by SATUSEHAT
    local_codes: bool  # sends local diagnosis / examination codes instead of ICD-10 / LOINC
    name_known: bool


@dataclass(eq=False, slots=True)
class City:
    province: tuple[str, str]
    city: tuple[str, str]
    kecamatan: tuple[tuple[str, str, int], ...]  # (code, name, population 2015)
    kelurahan: tuple[tuple[str, str, str], ...]  # (code, name, kecamatan code)
    facilities: tuple[Facility, ...]
    source: str
    # lookup tables, filled in by __post_init__ (plain dicts: looked up millions of times)
    by_code: dict[str, Facility] = field(default_factory=dict)
    by_area: dict[str, Facility] = field(default_factory=dict)
    kel_names: dict[str, str] = field(default_factory=dict)
    kec_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_code = {f.code: f for f in self.facilities}
        self.by_area = {k: f for f in self.facilities if f.kind == "puskesmas" for k in f.kelurahan}
        self.kel_names = {k[0]: k[1] for k in self.kelurahan}
        self.kec_names = {k[0]: k[1] for k in self.kecamatan}

    @property
    def puskesmas(self) -> tuple[Facility, ...]:
        return tuple(f for f in self.facilities if f.kind == "puskesmas")

    @property
    def rsud(self) -> Facility:
        return next(f for f in self.facilities if f.kind == "rsud")

    def facility(self, code: str) -> Facility:
        return self.by_code[code]

    def puskesmas_of(self, kelurahan: str) -> Facility:
        return self.by_area[kelurahan]

    def kelurahan_name(self, code: str) -> str:
        return self.kel_names[code]

    def kecamatan_name(self, code: str) -> str:
        return self.kec_names[code]


# Medical-record-number styles seen in Indonesian clinic systems: plain zero-padded numbers,
# dotted groups, facility-prefixed. Cycled over the Puskesmas so that each has its own.
_MRN_FORMATS = ("{n:06d}", "{a:02d}.{m:02d}.{k:02d}", "RM-{n:06d}", "{p}{n:05d}", "{n:08d}")


@lru_cache(maxsize=1)
def load_city() -> City:
    data = orjson.loads(REGIONS_FILE.read_bytes())
    kec = tuple((k["code"], k["name"], k["population_2015"]) for k in data["kecamatan"])
    kel = tuple(
        (v["code"], v["name"], k["code"]) for k in data["kecamatan"] for v in k["kelurahan"]
    )
    facilities = []
    for i, p in enumerate(data["puskesmas"]):
        facilities.append(
            Facility(
                code=p["code"],
                name=p["name"],
                kind="puskesmas",
                org_id=f"1008{5100 + i:04d}",
                ppk=f"1903P{i + 1:03d}",
                kecamatan=p["kecamatan"],
                kelurahan=tuple(p["kelurahan"]),
                address_kelurahan=p["kelurahan"][0],
                mrn_format=_MRN_FORMATS[i % len(_MRN_FORMATS)],
                sync_rate=(0.9, 0.6, 0.35)[i % 3],
                local_codes=i % 5 == 4,  # PKM05, PKM10, PKM15
                name_known=p["name_known"],
            )
        )
    r = data["rsud"]
    wolio = next(k for k in data["kecamatan"] if k["code"] == r["kecamatan"])
    facilities.append(
        Facility(
            code=r["code"],
            name=r["name"],
            kind="rsud",
            org_id="10085099",
            ppk="1903R001",
            kecamatan=r["kecamatan"],
            kelurahan=(),
            address_kelurahan=wolio["kelurahan"][0]["code"],
            mrn_format="{n:06d}",
            sync_rate=0.6,
            local_codes=False,
            name_known=True,
        )
    )
    return City(
        province=(data["province"]["code"], data["province"]["name"]),
        city=(data["city"]["code"], data["city"]["name"]),
        kecamatan=kec,
        kelurahan=kel,
        facilities=tuple(facilities),
        source=data["source"],
    )


def format_mrn(fac: Facility, n: int) -> str:
    return fac.mrn_format.format(n=n, a=n // 10000, m=n // 100 % 100, k=n % 100, p=fac.code[-2:])
