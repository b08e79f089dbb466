"""Column types that differ per database: JSONB on PostgreSQL, TEXT on SQLite.

Resource bodies cross the boundary as JSON *text*, never as parsed dicts, so a read is one
fetch and one write with no re-serialisation in between.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, Text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import TypeDecorator, UserDefinedType

# SQLite only makes INTEGER PRIMARY KEY an auto-incrementing rowid alias.
BigIntPk = BigInteger().with_variant(Integer(), "sqlite")


class _JsonColumn(UserDefinedType[str]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "TEXT"


@compiles(_JsonColumn, "postgresql")
def _jsonb_spec(element: Any, compiler: Any, **kw: Any) -> str:
    return "JSONB"


class as_json(FunctionElement[str]):
    """Binds JSON text into a JSON column (a cast on PostgreSQL)."""

    inherit_cache = True
    name = "as_json"


@compiles(as_json)
def _as_json_default(element: Any, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(as_json, "postgresql")
def _as_json_pg(element: Any, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS JSONB)"


class json_text(FunctionElement[str]):
    """Reads a JSON column back as text."""

    inherit_cache = True
    name = "json_text"


@compiles(json_text)
def _json_text_default(element: Any, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(json_text, "postgresql")
def _json_text_pg(element: Any, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})::text"


class JsonText(TypeDecorator[str]):
    """A resource body: JSONB on PostgreSQL, TEXT elsewhere; always JSON text in Python."""

    impl = _JsonColumn
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return as_json(bindvalue)

    def column_expression(self, col: Any) -> Any:
        return json_text(col)


__all__ = ["BigIntPk", "JsonText", "Text"]
