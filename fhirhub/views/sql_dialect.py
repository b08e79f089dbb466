"""The SQL each database needs for FHIR JSON: PostgreSQL JSONB and SQLite's JSON functions.

The compiler (``sql_compile``) writes its queries through these methods only. A JSON value is
``jsonb`` on PostgreSQL and JSON *text* on SQLite (``'"abc"'``, ``'1.0'``, ``'{"a":1}'``); SQL
NULL is the empty collection. Every key given here comes from the R4 element tables (letters
only) or is an integer, never from the request: values from the request are bind parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# a literal reference's Type/id (absolute URLs and _history stripped), as getReferenceKey() reads
REFERENCE_PATTERN = r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9.-]{1,64})(?:/_history/[^/]+)?$"
PLAIN_REFERENCE_PATTERN = r"^[A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64}$"  # the same, when it is all


@dataclass(frozen=True)
class Iteration:
    """A table-valued iteration over a JSON array: its FROM item and the expressions of its
    current element, index (0-based) and presence (false on a LEFT JOIN's null row)."""

    source: str
    value: str
    index: str
    present: str
    not_null: str


class Dialect:
    name = ""
    true = "TRUE"
    empty_array = ""

    def get(self, x: str, key: str) -> str:
        raise NotImplementedError

    def at(self, x: str, index: str) -> str:
        raise NotImplementedError

    def each(self, array: str, alias: str) -> Iteration:
        raise NotImplementedError

    def aggregate(self, value: str, order: str) -> str:
        raise NotImplementedError

    def wrap(self, x: str) -> str:
        """A single JSON value (NULL for none) as a JSON array."""
        raise NotImplementedError

    def length(self, array: str) -> str:
        raise NotImplementedError

    def json_of_bool(self, b: str) -> str:
        raise NotImplementedError

    def json_of_text(self, t: str) -> str:
        raise NotImplementedError

    def json_of_int(self, n: str) -> str:
        raise NotImplementedError

    def text_of(self, x: str) -> str:
        """A JSON string's text."""
        raise NotImplementedError

    def bool_of(self, x: str) -> str:
        """FHIRPath's boolean of one JSON value: a boolean itself, anything else true."""
        raise NotImplementedError

    def is_string(self, x: str) -> str:
        raise NotImplementedError

    def is_value(self, x: str) -> str:
        """Neither SQL NULL nor JSON null."""
        raise NotImplementedError

    def is_number(self, x: str) -> str:
        raise NotImplementedError

    def number_of(self, x: str) -> str:
        raise NotImplementedError

    def equal(self, a: str, b: str) -> str:
        """FHIRPath ``=`` of two single JSON values that are not dates (NULL when one is)."""
        raise NotImplementedError

    def string_agg(self, text: str, separator: str, order: str) -> str:
        raise NotImplementedError

    def reference_key(self, reference_text: str, wanted: str | None) -> str:
        """The ``Type/id`` text a reference string points at (NULL when it does not)."""
        raise NotImplementedError

    def out(self, x: str) -> str:
        """A JSON value as the JSON text Python reads."""
        raise NotImplementedError

    def row(self, values: list[str]) -> str:
        """A row's JSON values as the text of one JSON array (one value for Python to read)."""
        raise NotImplementedError

    def temporal_compare(self, a: str, b: str, op: str) -> str:
        """``a op b`` (``=``, ``<``...) of two date/dateTime/instant texts as FHIRPath has it
        (``fhirpath_eval.temporal_order``): NULL when their precisions differ."""
        raise NotImplementedError

    def concat(self, arrays: list[str]) -> str:
        """JSON arrays one after the other, as one array."""
        raise NotImplementedError

    def sort_key(self, parent: str | None, index: str) -> str:
        """A key that sorts a tree's elements depth first: the parent's key, then the index."""
        raise NotImplementedError

    def param_int(self, param: str) -> str:
        return f"CAST({param} AS INTEGER)"

    @staticmethod
    def key(key: str) -> str:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not an element name: {key!r}")
        return key


class Postgres(Dialect):
    name = "postgresql"
    true = "TRUE"
    empty_array = "'[]'::jsonb"

    def get(self, x: str, key: str) -> str:
        return f"({x} -> '{self.key(key)}')"

    def at(self, x: str, index: str) -> str:
        return f"({x} -> {index})"

    def each(self, array: str, alias: str) -> Iteration:
        return Iteration(
            f"jsonb_array_elements({array}) WITH ORDINALITY AS {alias}(value, idx)",
            f"{alias}.value",
            f"({alias}.idx - 1)",
            f"({alias}.idx IS NOT NULL)",
            f"(jsonb_typeof({alias}.value) <> 'null')",
        )

    def aggregate(self, value: str, order: str) -> str:
        return f"coalesce(jsonb_agg({value} ORDER BY {order}), '[]'::jsonb)"

    def wrap(self, x: str) -> str:
        # '$' is the value itself, once (x is written once: it may be a subquery)
        return f"coalesce(jsonb_path_query_array({x}, '$'), '[]'::jsonb)"

    def length(self, array: str) -> str:
        return f"jsonb_array_length({array})"

    def json_of_bool(self, b: str) -> str:
        return f"to_jsonb({b})"

    def json_of_text(self, t: str) -> str:
        return f"to_jsonb(CAST({t} AS TEXT))"

    def json_of_int(self, n: str) -> str:
        return f"to_jsonb(CAST({n} AS BIGINT))"

    def text_of(self, x: str) -> str:
        return f"({x} #>> '{{}}')"

    def bool_of(self, x: str) -> str:
        return (
            f"(CASE WHEN {x} IS NULL THEN NULL WHEN jsonb_typeof({x}) = 'boolean' "
            f"THEN CAST({x} AS BOOLEAN) ELSE TRUE END)"
        )

    def is_string(self, x: str) -> str:
        return f"(jsonb_typeof({x}) = 'string')"

    def is_value(self, x: str) -> str:
        return f"(jsonb_typeof({x}) <> 'null')"

    def is_number(self, x: str) -> str:
        return f"(jsonb_typeof({x}) = 'number')"

    def number_of(self, x: str) -> str:
        return f"CAST({x} AS NUMERIC)"

    def equal(self, a: str, b: str) -> str:
        return f"({a} = {b})"

    def string_agg(self, text: str, separator: str, order: str) -> str:
        return f"coalesce(string_agg({text}, {separator} ORDER BY {order}), '')"

    def reference_key(self, reference_text: str, wanted: str | None) -> str:
        # A plain "Type/id" (nearly every reference) is its own key: an anchored match and
        # split_part cost a tenth of the general pattern, which PostgreSQL tries at each
        # position of the text (about 0.1 ms a reference).
        check = "" if wanted is None else f" WHERE m[1] = {wanted}"
        plain = (
            "ref.s"
            if wanted is None
            else f"CASE WHEN split_part(ref.s, '/', 1) = {wanted} THEN ref.s END"
        )
        return (
            f"(SELECT CASE WHEN ref.s ~ '{PLAIN_REFERENCE_PATTERN}' THEN {plain} "
            f"ELSE (SELECT m[1] || '/' || m[2] FROM regexp_match(ref.s, "
            f"'{REFERENCE_PATTERN}') AS m{check}) END FROM (SELECT {reference_text} AS s) AS ref)"
        )

    def out(self, x: str) -> str:
        return f"CAST({x} AS TEXT)"

    def row(self, values: list[str]) -> str:
        return f"CAST(jsonb_build_array({', '.join(values)}) AS TEXT)"

    def concat(self, arrays: list[str]) -> str:
        return f"({' || '.join(arrays)})" if len(arrays) > 1 else arrays[0]

    def temporal_compare(self, a: str, b: str, op: str) -> str:
        zone = "'(Z|[+-][0-9][0-9]:[0-9][0-9])$'"

        def full(x: str) -> str:
            return f"(strpos({x}, 'T') > 0 AND length(split_part({x}, 'T', 2)) >= 8)"

        instants = (
            f"(CASE WHEN {a} ~ {zone} THEN CAST({a} AS TIMESTAMPTZ) {op} CAST({b} AS TIMESTAMPTZ) "
            f"ELSE CAST({a} AS TIMESTAMP) {op} CAST({b} AS TIMESTAMP) END)"
        )
        equal = "TRUE" if op in ("=", "<=", ">=") else "FALSE"
        return (
            f"(CASE WHEN {a} IS NULL OR {b} IS NULL THEN NULL WHEN {a} = {b} THEN {equal} "
            f"WHEN {full(a)} AND {full(b)} AND ({a} ~ {zone}) = ({b} ~ {zone}) THEN {instants} "
            f"WHEN length({a}) <> length({b}) THEN NULL "
            f'ELSE ({a} COLLATE "C") {op} ({b} COLLATE "C") END)'
        )

    def sort_key(self, parent: str | None, index: str) -> str:
        return f"ARRAY[{index}]" if parent is None else f"({parent} || {index})"


class Sqlite(Dialect):
    name = "sqlite"
    true = "1"
    empty_array = "'[]'"

    def get(self, x: str, key: str) -> str:
        return f"({x} -> '$.{self.key(key)}')"

    def at(self, x: str, index: str) -> str:
        return f"({x} -> ('$[' || {index} || ']'))"

    def each(self, array: str, alias: str) -> Iteration:
        # json_each gives a string's text and a boolean as 1/0: made JSON text again here
        value = (
            f"(CASE {alias}.type WHEN 'text' THEN json_quote({alias}.value) "
            f"WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN NULL "
            f"ELSE {alias}.value END)"
        )
        return Iteration(
            f"json_each({array}) AS {alias}",
            value,
            f"{alias}.key",
            f"({alias}.key IS NOT NULL)",
            f"({alias}.type <> 'null')",
        )

    def aggregate(self, value: str, order: str) -> str:
        # rows reach the aggregate in the order of the json_each scans (arrays' order)
        return f"json_group_array(json({value}))"

    def wrap(self, x: str) -> str:
        return f"(CASE WHEN {x} IS NULL THEN '[]' ELSE json_array(json({x})) END)"

    def length(self, array: str) -> str:
        return f"json_array_length({array})"

    def json_of_bool(self, b: str) -> str:
        return f"(CASE {b} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END)"

    def json_of_text(self, t: str) -> str:
        return f"json_quote(CAST({t} AS TEXT))"

    def json_of_int(self, n: str) -> str:
        return f"json_quote(CAST({n} AS INTEGER))"

    def text_of(self, x: str) -> str:
        return f"json_extract({x}, '$')"

    def bool_of(self, x: str) -> str:
        return f"(CASE WHEN {x} IS NULL THEN NULL WHEN {x} = 'false' THEN 0 ELSE 1 END)"

    def is_string(self, x: str) -> str:
        return f"(json_type({x}) = 'text')"

    def is_value(self, x: str) -> str:
        return f"(json_type({x}) <> 'null')"

    def is_number(self, x: str) -> str:
        return f"(json_type({x}) IN ('integer', 'real'))"

    def number_of(self, x: str) -> str:
        return f"json_extract({x}, '$')"

    def equal(self, a: str, b: str) -> str:
        return (
            f"(CASE WHEN {a} IS NULL OR {b} IS NULL THEN NULL "
            f"WHEN json_type({a}) IN ('integer', 'real') AND json_type({b}) IN ('integer', 'real') "
            f"THEN json_extract({a}, '$') = json_extract({b}, '$') "
            f"ELSE json({a}) = json({b}) END)"
        )

    def string_agg(self, text: str, separator: str, order: str) -> str:
        return f"coalesce(group_concat({text}, {separator}), '')"

    def reference_key(self, reference_text: str, wanted: str | None) -> str:
        # fhirhub_reference_key is registered on each SQLite connection (sql_run.prepare)
        return f"fhirhub_reference_key({reference_text}, {wanted if wanted else 'NULL'})"

    def out(self, x: str) -> str:
        return x

    def row(self, values: list[str]) -> str:
        return f"json_array({', '.join(f'json({v})' for v in values)})"

    def temporal_compare(self, a: str, b: str, op: str) -> str:
        # fhirhub_temporal_order is the evaluator's own rule, registered by sql_run.prepare
        return f"(fhirhub_temporal_order({a}, {b}) {op} 0)"

    def concat(self, arrays: list[str]) -> str:
        if len(arrays) == 1:
            return arrays[0]
        parts = []
        for i, array in enumerate(arrays):
            e = self.each(array, f"cat{i}")
            parts.append(f"SELECT {e.value} AS v FROM {e.source}")
        return f"(SELECT json_group_array(json(v)) FROM ({' UNION ALL '.join(parts)}))"

    def sort_key(self, parent: str | None, index: str) -> str:
        key = f"printf('%08d', {index})"
        return key if parent is None else f"({parent} || '.' || {key})"


def dialect_for(name: str) -> Dialect:
    return Postgres() if name == "postgresql" else Sqlite()
