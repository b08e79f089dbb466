"""Rows of a view as the bytes of ``$viewdefinition-run``'s formats, a batch at a time.

``json`` is one JSON array of row objects, ``ndjson`` one object a line, ``csv`` a header of the
column names then one line a row (RFC 4180 quoting; an empty field for no value, a collection or
object as its JSON text, booleans as ``true``/``false``).

``parquet`` (optional: the ``parquet`` extra, pyarrow) is one Parquet file written a row group at
a time, each sent as soon as it is written (the footer comes last), so it streams too. Columns
are typed from the view: ``boolean``, the integer types as int64, ``decimal`` as double, any
other as text; a collection, or an object, as its JSON text (as in CSV).
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
    "parquet": "application/vnd.apache.parquet",
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
    "parquet": "parquet",
    "application/vnd.apache.parquet": "parquet",
    "application/parquet": "parquet",
}
PARQUET_ROW_GROUP = 10_000
_INTEGERS = {"integer", "positiveInt", "unsignedInt", "integer64"}


def parquet_missing() -> str | None:
    """Why ``parquet`` cannot be written here (None: it can)."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return (
            "_format parquet needs the optional 'parquet' extra (pyarrow), which this server "
            "does not have; install fhirhub[parquet], or use json, ndjson or csv"
        )
    return None


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
    if fmt == "parquet":
        raise ValueError("parquet is written by encode_parquet, which needs the column types")
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


class _Chunks:
    """A write-only file that keeps what is written until it is taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        return out


def encode_parquet(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[Any],
    row_group: int | None = None,
) -> Iterator[bytes]:
    """One Parquet file of ``rows`` (``columns``: the view's ``Column`` objects), a row group at
    a time; the first chunk (the first row group, or the whole file for fewer rows) comes once
    that group is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    group = row_group or PARQUET_ROW_GROUP

    def kind(column: Any) -> Any:
        if column.collection:
            return pa.string()
        if column.type == "boolean":
            return pa.bool_()
        if column.type in _INTEGERS:
            return pa.int64()
        if column.type == "decimal":
            return pa.float64()
        return pa.string()

    schema = pa.schema([pa.field(c.name, kind(c)) for c in columns])
    text_columns = [pa.types.is_string(f.type) for f in schema]
    names = [c.name for c in columns]
    sink = _Chunks()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    try:
        buffered: list[list[Any]] = [[] for _ in names]

        def write_group() -> None:
            writer.write_table(pa.table(buffered, schema=schema), row_group_size=group)
            for values in buffered:
                values.clear()

        n = 0
        for row in rows:
            for i, name in enumerate(names):
                value = row.get(name)
                if text_columns[i] and value is not None and not isinstance(value, str):
                    value = _cell(value)
                buffered[i].append(value)
            n += 1
            if n % group == 0:
                write_group()
                yield sink.take()
        if n % group or n == 0:
            write_group()
    finally:
        writer.close()
    yield sink.take()
