"""Rows of a view as the bytes of ``$viewdefinition-run``'s formats, a batch at a time.

``json`` is one JSON array of row objects, ``ndjson`` one object a line, ``csv`` a header of the
column names then one line a row (RFC 4180 quoting; an empty field for no value, a collection or
object as its JSON text, booleans as ``true``/``false``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

MEDIA_TYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}
# the names clients use for each format (the operation's _format, or a media type)
FORMATS = {
    "json": "json",
    "application/json": "json",
    "ndjson": "ndjson",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/fhir+ndjson": "ndjson",
    "csv": "csv",
    "text/csv": "csv",
}


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_NON_STR_KEYS)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return _dump(value).decode()
    return str(value)


def encode(
    rows: Iterable[dict[str, Any]], fmt: str, columns: Sequence[str], batch: int = 500
) -> Iterator[bytes]:
    """The output, in chunks of about ``batch`` rows (the first chunk always comes, even for
    no rows, so a response can start once the first batch is known to be good)."""
    if fmt == "csv":
        yield from _csv(rows, columns, batch)
        return
    opener, separator, closer = (b"[", b",", b"]") if fmt == "json" else (b"", b"", b"")
    line_end = b"\n" if fmt == "ndjson" else b""
    chunk: list[bytes] = [opener]
    for n, row in enumerate(rows, start=1):
        if n > 1:
            chunk.append(separator)
        chunk.append(_dump(row) + line_end)
        if n % batch == 0:
            yield b"".join(chunk)
            chunk = []
    chunk.append(closer)
    yield b"".join(chunk)


def _csv(rows: Iterable[dict[str, Any]], columns: Sequence[str], batch: int) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for n, row in enumerate(rows, start=1):
        writer.writerow([_cell(row.get(c)) for c in columns])
        if n % batch == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
