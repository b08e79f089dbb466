"""Reading visits from a SIMRS Khanza database (MariaDB/MySQL, PyMySQL), for ``fhirhub pull``.

Read only: every session is ``READ ONLY``, and only ``SELECT`` is ever sent. A visit is a
``reg_periksa`` row; its position is its ``no_rawat``, the table's primary key, which Khanza
makes of the registration date and the day's sequence (``2024/01/17/000123``): reading in key
order is reading in registration order, a range scan of the primary key per batch (Khanza has
no index on ``tgl_registrasi``). Each visit is read with every column of its rows (``SELECT *``:
Khanza installations differ in their columns, and the inbox keeps what was read): the patient,
the diagnoses and their ``penyakit`` rows, the procedures and their ``icd9`` rows, the payer,
the clinic and the region rows. The payload is canonical JSON (sorted keys, rows in key order),
so the same rows read again are the same bytes, and the same inbox message.

``--since DATE`` reads the visits registered from that date (``no_rawat`` after
``YYYY/MM/DD``); the watermark's lookback reads again the visits of the days before it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, create_engine, event, text

from adapters.rsud.khanza import CONTENT_TYPE, NAME, mapping_for
from fhirhub.ingest import Context
from fhirhub.ingest.pull import Pulled, Window

_DAY = re.compile(r"^(\d{4})/(\d\d)/(\d\d)")


def read_only_engine(url: str) -> Engine:
    """An engine on the Khanza database whose sessions refuse to write."""
    engine = create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET SESSION TRANSACTION READ ONLY")
        cursor.close()

    return engine


def start_of(window: Window) -> str:
    """The ``no_rawat`` the read starts after."""
    if window.since is not None:
        return window.since.strftime("%Y/%m/%d")  # "2024/01/10" < "2024/01/10/000001"
    if window.after is None:
        return ""
    found = _DAY.match(window.after)
    if window.lookback_days and found:
        day = date(*(int(g) for g in found.groups())) - timedelta(days=window.lookback_days)
        return day.strftime("%Y/%m/%d")
    return window.after


def plain(value: Any) -> Any:
    """A column's value as JSON: dates and times in ISO form, decimals as text, text without
    NUL characters (the inbox refuses them)."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):  # PyMySQL reads TIME as a timedelta
        seconds = int(value.total_seconds())
        sign = "-" if seconds < 0 else ""
        h, rest = divmod(abs(seconds), 3600)
        return f"{sign}{h:02d}:{rest // 60:02d}:{rest % 60:02d}"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "")  # no database of fhirhub's can keep NUL in JSON
    return value


def _row(mapping: Any) -> dict[str, Any]:
    return {k: plain(v) for k, v in mapping.items()}


def _by(
    conn: Connection, table: str, column: str, keys: Sequence[Any]
) -> dict[str, list[dict[str, Any]]]:
    """The rows of ``table`` whose ``column`` is one of ``keys``, grouped by it (as text)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    wanted = sorted({k for k in keys if k is not None}, key=str)
    if not wanted:
        return out
    query = text(f"SELECT * FROM {table} WHERE {column} IN :keys").bindparams(
        bindparam("keys", expanding=True)
    )
    for r in conn.execute(query, {"keys": wanted}).mappings():
        out[str(r[column])].append(_row(r))
    return out


def _one(rows: dict[str, list[dict[str, Any]]], key: Any) -> dict[str, Any] | None:
    found = rows.get(str(key)) if key is not None else None
    return found[0] if found else None


def _ordered(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: tuple(str(r.get(k)) for k in keys))


def read_batch(conn: Connection, after: str, batch: int) -> list[dict[str, Any]]:
    """The next ``batch`` visits after ``after``, each with its rows, as JSON-ready dicts."""
    regs = [
        _row(r)
        for r in conn.execute(
            text("SELECT * FROM reg_periksa WHERE no_rawat > :after ORDER BY no_rawat LIMIT :n"),
            {"after": after, "n": batch},
        ).mappings()
    ]
    if not regs:
        return []
    visits = [r["no_rawat"] for r in regs]
    pasien = _by(conn, "pasien", "no_rkm_medis", [r.get("no_rkm_medis") for r in regs])
    diagnoses = _by(conn, "diagnosa_pasien", "no_rawat", visits)
    procedures = _by(conn, "prosedur_pasien", "no_rawat", visits)
    diseases = _by(
        conn,
        "penyakit",
        "kd_penyakit",
        [d.get("kd_penyakit") for rows in diagnoses.values() for d in rows],
    )
    icd9 = _by(conn, "icd9", "kode", [p.get("kode") for rows in procedures.values() for p in rows])
    patients = [p for rows in pasien.values() for p in rows]
    payers = _by(conn, "penjab", "kd_pj", [r.get("kd_pj") for r in regs])
    clinics = _by(conn, "poliklinik", "kd_poli", [r.get("kd_poli") for r in regs])
    regions = {
        table: _by(conn, table, column, [p.get(column) for p in patients])
        for table, column in (
            ("kelurahan", "kd_kel"),
            ("kecamatan", "kd_kec"),
            ("kabupaten", "kd_kab"),
            ("propinsi", "kd_prop"),
        )
    }
    out = []
    for reg in regs:
        no_rawat = reg["no_rawat"]
        patient = _one(pasien, reg.get("no_rkm_medis"))
        dx = _ordered(diagnoses.get(no_rawat, []), "prioritas", "kd_penyakit", "status")
        px = _ordered(procedures.get(no_rawat, []), "prioritas", "kode", "status")
        visit: dict[str, Any] = {
            "reg_periksa": reg,
            "pasien": patient,
            "diagnosa_pasien": dx,
            "penyakit": _ordered(
                [r for code in sorted({str(d["kd_penyakit"]) for d in dx}) for r in diseases[code]],
                "kd_penyakit",
            ),
            "prosedur_pasien": px,
            "icd9": _ordered(
                [r for code in sorted({str(p["kode"]) for p in px}) for r in icd9[code]], "kode"
            ),
            "penjab": _one(payers, reg.get("kd_pj")),
            "poliklinik": _one(clinics, reg.get("kd_poli")),
        }
        for table, column in (
            ("kelurahan", "kd_kel"),
            ("kecamatan", "kd_kec"),
            ("kabupaten", "kd_kab"),
            ("propinsi", "kd_prop"),
        ):
            visit[table] = _one(regions[table], patient.get(column)) if patient else None
        out.append(visit)
    return out


def payload_of(visit: dict[str, Any]) -> bytes:
    return orjson.dumps(visit, option=orjson.OPT_SORT_KEYS)


class KhanzaPuller:
    name = NAME
    source = NAME
    content_type = CONTENT_TYPE

    def pending(self, url: str, window: Window) -> int:
        engine = read_only_engine(url)
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        text("SELECT COUNT(*) FROM reg_periksa WHERE no_rawat > :after"),
                        {"after": start_of(window)},
                    ).scalar_one()
                )
        finally:
            engine.dispose()

    def read(
        self, url: str, window: Window, context: Context, batch: int
    ) -> Iterator[list[Pulled]]:
        sender = mapping_for(context, None).code
        after = start_of(window)
        engine = read_only_engine(url)
        try:
            while True:
                with engine.connect() as conn:  # a short read per batch: no long transaction
                    visits = read_batch(conn, after, batch)
                if not visits:
                    return
                yield [
                    Pulled(str(v["reg_periksa"]["no_rawat"]), payload_of(v), sender) for v in visits
                ]
                after = str(visits[-1]["reg_periksa"]["no_rawat"])
                if len(visits) < batch:
                    return
        finally:
            engine.dispose()


puller = KhanzaPuller()
