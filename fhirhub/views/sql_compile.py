"""Compile a ViewDefinition to one SQL query over the ``resources`` table (ADR 0004).

The compiler walks the same :mod:`~fhirhub.views.fhirpath_ast` tree as the in-memory evaluator
and gives the same rows, or refuses (:class:`Uncompilable`) and the view runs in memory over the
streamed resources instead (``sql_run``); it never guesses. What it compiles:

- ``select`` nesting, ``forEach`` (a join over the array), ``forEachOrNull`` (a LEFT JOIN),
  ``repeat`` at the resource (a recursive CTE, depth first), ``unionAll`` (the query is a
  UNION ALL of one branch per combination), ``where``, ``constant``, ``%rowIndex``,
  ``collection``;
- paths of elements the R4 tables know (so the compiler knows which repeat and what type they
  are; choice elements by their key, ``value.ofType(Quantity)`` is ``valueQuantity``; an
  element R4 does not define on a known type is empty, as in a store of R4 resources), ``$this``,
  indexes ``[n]``, ``first()``, ``exists()``, ``empty()``, ``where()``, ``not()``, ``join()``,
  ``extension(url)``, ``getResourceKey()``, ``getReferenceKey([Type])``, ``=`` and ``!=``
  (one side may be a collection), ``and``, ``or``, ``<``/``>`` of numbers and of dates,
  dateTimes and instants (FHIRPath's precision rule: empty when they differ; instants as points
  in time), and string, boolean, integer, date and dateTime literals and constants.

Everything else (boundaries, arithmetic, ``|``, time and decimal values and comparisons,
string functions, ``ofType()`` of a non-choice element, ``repeat`` below another iteration, a
value of a type the tables do not know...) is Uncompilable. A non-collection column that may
hold several values is selected as an array, and the runner raises the in-memory runner's error
when one does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import product
from pathlib import Path
from typing import Any

import fhirhub.model
from fhirhub.views.definition import Select, View
from fhirhub.views.fhirpath_ast import (
    Binary,
    Call,
    Constant,
    Indexer,
    Literal,
    Member,
    Node,
    Variable,
    type_name_of,
)
from fhirhub.views.fhirpath_types import STRING_TYPES, SUPERTYPES, Item
from fhirhub.views.sql_dialect import Dialect

_TEMPORAL = frozenset({"date", "dateTime", "instant", "time"})
_DATES = frozenset({"date", "dateTime", "instant"})  # compared in SQL (not time)
_NUMBERS = frozenset({"integer", "decimal", "unsignedInt", "positiveInt"})


class Uncompilable(Exception):
    """The view uses something the compiler does not translate: run it in memory."""


@cache
def _elements() -> dict[str, dict[str, list[Any]]]:
    path = Path(fhirhub.model.__file__).resolve().parent / "data" / "r4_elements.json"
    elements: dict[str, dict[str, list[Any]]] = json.loads(path.read_text())["elements"]
    return elements


def _is_a(kind: str | None, wanted: str) -> bool:
    while kind is not None:
        if kind.lower() == wanted.lower():
            return True
        kind = SUPERTYPES.get(kind)
    return False


@dataclass(frozen=True)
class SetForm:
    """A collection as the rows of a FROM clause (before aggregating it into an array):
    ``first()`` is then a LIMIT 1, ``exists()`` an EXISTS, and a path step one more join."""

    source: str
    value: str
    order: str
    where: tuple[str, ...] = ()

    def clause(self) -> str:
        return f"FROM {self.source}" + (f" WHERE {' AND '.join(self.where)}" if self.where else "")


@dataclass(frozen=True)
class Val:
    """A compiled expression. ``kind``: ``json`` (a JSON value, or with ``many`` a JSON array),
    ``bool`` (an SQL boolean), ``text`` or ``int`` (SQL values). NULL is the empty collection."""

    sql: str
    kind: str = "json"
    many: bool = False
    type: str | None = None  # the FHIR type, when known
    root: bool = False  # the resource itself
    empty: bool = False  # always empty (an element R4 does not define here)
    rows: SetForm | None = None  # with many: the same collection as rows (``sql`` aggregates)


@dataclass
class Compiled:
    """One query: its SQL, bind parameters and the output columns."""

    sql: str
    params: dict[str, Any]
    columns: tuple[str, ...]
    many: dict[str, bool]  # column -> selected as a JSON array
    collection: dict[str, bool]  # column -> collection: true (else an array must hold <= 1)
    locations: dict[str, str]  # column -> where it is in the ViewDefinition


@dataclass
class _Join:
    source: str
    left: bool
    condition: str | None  # a WHERE condition (a forEach below a forEachOrNull)
    on: str | None = None  # a join condition (else the join is lateral, ON TRUE)
    alias: str = ""


@dataclass
class _Branch:
    joins: list[_Join] = field(default_factory=list)
    columns: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (sql, many)
    conditions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Ctx:
    focus: Val
    row_index: str
    this: Val | None = None


class Compiler:
    def __init__(self, view: View, dialect: Dialect) -> None:
        self.view = view
        self.d = dialect
        self.params: dict[str, Any] = {}
        self.aliases = 0
        self.collection: dict[str, bool] = {}
        self.ctes: list[str] = []
        self.repeat_types: dict[str, str | None] = {}
        self.locations: dict[str, str] = {}
        self.root = Val("r.content", type=view.resource, root=True)

    # --- the view -------------------------------------------------------------------------

    def compile(self, filters: list[str]) -> Compiled:
        conditions = ["r.res_type = :view_type", "NOT r.deleted", *filters]
        self.params["view_type"] = self.view.resource
        ctx = _Ctx(self.root, "0")
        for where in self.view.where:
            test = self.expr(where.expr, ctx)
            if test.many or test.type != "boolean":  # in memory, anything else is an error
                raise Uncompilable("a where path that may not give a boolean")
            conditions.append(f"coalesce({self.boolean(test)}, FALSE)")
        branches = self.select(self.view.root, ctx, None, False)
        names = self.view.column_names
        many = {name: any(b.columns[name][1] for b in branches) for name in names}
        queries = []
        for branch in branches:
            outs: list[str] = []
            for name in names:
                sql, is_many = branch.columns[name]
                if many[name] and not is_many:
                    sql = self.d.wrap(sql)
                outs.append(sql)
            joins = "".join(
                f" JOIN {j.source} ON {j.on}"
                if j.on
                else f" LEFT JOIN {j.source} ON {self.d.true}"
                if j.left
                else f" CROSS JOIN {j.source}"
                for j in branch.joins
            )
            wheres = conditions + [j.condition for j in branch.joins if j.condition]
            wheres += branch.conditions
            queries.append(
                f"SELECT r.pk AS pk, {self.d.row(outs)} AS row FROM resources r{joins} "
                f"WHERE {' AND '.join(wheres)}"
            )
        sql = " UNION ALL ".join(queries)
        if self.ctes:
            sql = f"WITH RECURSIVE {', '.join(self.ctes)} {sql}"
        return Compiled(sql, self.params, names, many, self.collection, self.locations)

    def select(
        self,
        select: Select,
        ctx: _Ctx,
        parent_present: str | None,
        under_left: bool,
        guards: tuple[str, ...] = (),
    ) -> list[_Branch]:
        """The branches of ``select``. ``guards``: the presence of each forEachOrNull above;
        on a forEachOrNull's row of nulls every column below it is null (the runner's rule)."""
        own = _Branch()
        inner_guards = guards
        if select.iterate == "repeat":
            if not ctx.focus.root:
                raise Uncompilable("repeat below another iteration")
            own.joins.append(self.repeat(select))
            alias = own.joins[-1].alias
            ctx = _Ctx(Val(f"{alias}.value", type=self.repeat_types[alias]), f"{alias}.idx")
            parent_present = f"({alias}.pk IS NOT NULL)"
        elif select.iterate is not None:
            source = self.expr(select.paths[0], ctx)
            array = self.array(source)
            alias = self.alias()
            it = self.d.each(array, alias)
            left = select.iterate == "forEachOrNull" or under_left
            if not left:
                condition = it.not_null
            else:
                condition = f"({it.not_null} OR NOT {it.present})"
                if select.iterate == "forEach":
                    # below a forEachOrNull's row of nulls, a forEach keeps that row
                    condition += f" AND ({it.present} OR NOT {parent_present})"
            own.joins.append(_Join(it.source, left, condition))
            if select.iterate == "forEachOrNull":
                inner_guards = (*guards, it.present)
            element_type = source.type
            ctx = _Ctx(
                Val(it.value, type=element_type),
                f"coalesce({it.index}, 0)" if left else it.index,
            )
            parent_present = it.present
            under_left = left
        for column in select.columns:
            self.collection[column.name] = column.collection
            self.locations[column.name] = column.location
            value = self.expr(column.expr, ctx)
            sql = self.array(value) if column.collection else self.json(value)
            if guards:
                sql = f"(CASE WHEN {' AND '.join(guards)} THEN {sql} END)"
            own.columns[column.name] = (sql, column.collection or value.many)
        parts: list[list[_Branch]] = [[own]]
        for sub in select.selects:
            parts.append(self.select(sub, ctx, parent_present, under_left, inner_guards))
        if select.union_all:
            union: list[_Branch] = []
            for i, branch in enumerate(select.union_all):
                found = self.select(branch, ctx, parent_present, under_left, inner_guards)
                if i > 0 and under_left and parent_present:
                    # a forEachOrNull's row of nulls is one row, not one per branch
                    for b in found:
                        b.conditions.append(parent_present)
                union.extend(found)
            parts.append(union)
        out = []
        for combination in product(*parts):
            merged = _Branch()
            for part in combination:
                merged.joins.extend(part.joins)
                merged.columns.update(part.columns)
                merged.conditions.extend(part.conditions)
            out.append(merged)
        return out

    def repeat(self, select: Select) -> _Join:
        """A repeat at the resource: a recursive CTE of every element its paths reach, in the
        in-memory runner's order (depth first, the paths in turn), numbered per resource."""
        alias = self.alias()
        seeds = [self.expr(path, _Ctx(self.root, "0")) for path in select.paths]
        kinds = {v.type for v in seeds if not v.empty}
        if len(kinds) > 1 or None in kinds:
            raise Uncompilable("repeat paths of different or unknown types")
        kind = kinds.pop() if kinds else None
        self.repeat_types[alias] = kind
        rep = f"{alias}_rep"
        step_focus = Val(f"{rep}.value", type=kind)
        steps = (
            [self.expr(path, _Ctx(step_focus, "0")) for path in select.paths]
            if kind is not None
            else [Val("NULL", empty=True)]
        )
        if any(not v.empty and v.type != kind for v in steps):
            raise Uncompilable("repeat paths of different types")
        seed_each = self.d.each(self.d.concat([self.array(v) for v in seeds]), f"{alias}_s")
        step_each = self.d.each(self.d.concat([self.array(v) for v in steps]), f"{alias}_e")
        self.ctes.append(
            f"{rep}(pk, value, sortkey) AS ("
            f"SELECT r.pk, {seed_each.value}, {self.d.sort_key(None, seed_each.index)} "
            f"FROM resources r CROSS JOIN {seed_each.source} "
            f"WHERE r.res_type = :view_type AND NOT r.deleted AND {seed_each.not_null} "
            f"UNION ALL SELECT {rep}.pk, {step_each.value}, "
            f"{self.d.sort_key(f'{rep}.sortkey', step_each.index)} "
            f"FROM {rep} CROSS JOIN {step_each.source} WHERE {step_each.not_null})"
        )
        source = (
            f"(SELECT pk, value, row_number() OVER (PARTITION BY pk ORDER BY sortkey) - 1 AS idx "
            f"FROM {rep}) AS {alias}"
        )
        return _Join(source, False, None, on=f"{alias}.pk = r.pk", alias=alias)

    def alias(self) -> str:
        self.aliases += 1
        return f"j{self.aliases}"

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def text_param(self, value: str) -> str:
        """A text bind parameter, typed (PostgreSQL cannot infer it in ``:p IS NULL``)."""
        return f"CAST({self.param(value)} AS TEXT)"

    # --- conversions ------------------------------------------------------------------------

    def json(self, v: Val) -> str:
        if v.kind == "json":
            return v.sql
        if v.kind == "bool":
            return self.d.json_of_bool(v.sql)
        if v.kind == "text":
            return self.d.json_of_text(v.sql)
        return self.d.json_of_int(v.sql)

    def array(self, v: Val) -> str:
        return v.sql if v.many else self.d.wrap(self.json(v))

    def boolean(self, v: Val) -> str:
        if v.many:
            raise Uncompilable("a boolean of a collection")
        if v.kind == "bool":
            return v.sql
        if v.kind == "json":
            return self.d.bool_of(v.sql)
        return self.d.true  # one text or number is true

    # --- expressions ------------------------------------------------------------------------

    def expr(self, node: Node, ctx: _Ctx) -> Val:
        if isinstance(node, Member):
            source = ctx.focus if node.source is None else self.expr(node.source, ctx)
            if node.source is None and source.root and node.name == self.view.resource:
                return source
            return self.member(source, node.name, None)
        if isinstance(node, Call):
            return self.call(node, ctx)
        if isinstance(node, Literal):
            if node.type == "string":
                return Val(self.text_param(str(node.value)), "text", type="string")
            if node.type == "boolean":
                return Val("TRUE" if node.value else "FALSE", "bool", type="boolean")
            if node.type == "integer":
                return Val(self.d.param_int(self.param(node.value)), "int", type="integer")
            if node.type in _DATES:
                return Val(self.text_param(str(node.value)), "text", type=node.type)
            raise Uncompilable(f"a {node.type} literal")
        if isinstance(node, Constant):
            return self.constant(node, ctx)
        if isinstance(node, Variable):
            if node.name == "this":
                return ctx.this if ctx.this is not None else ctx.focus
            raise Uncompilable(f"${node.name}")
        if isinstance(node, Binary):
            return self.binary(node, ctx)
        if isinstance(node, Indexer):
            return self.indexer(node, ctx)
        raise Uncompilable(type(node).__name__)

    def constant(self, node: Constant, ctx: _Ctx) -> Val:
        if node.name == "rowIndex":
            return Val(ctx.row_index, "int", type="integer")
        if node.name in ("resource", "rootResource"):
            return self.root
        items: list[Item] = list(self.view.constants.get(node.name, []))
        if len(items) != 1:
            raise Uncompilable(f"%{node.name}")
        value, kind = items[0].value, items[0].type
        if kind in _DATES and isinstance(value, str):
            return Val(self.text_param(value), "text", type=kind)
        if kind in _TEMPORAL:
            raise Uncompilable(f"a {kind} constant")
        if isinstance(value, bool):
            return Val("TRUE" if value else "FALSE", "bool", type="boolean")
        if isinstance(value, int):
            return Val(self.d.param_int(self.param(value)), "int", type=kind or "integer")
        if isinstance(value, str) and (kind is None or kind in STRING_TYPES):
            return Val(self.text_param(value), "text", type=kind or "string")
        raise Uncompilable(f"a {kind} constant")

    def member(self, source: Val, name: str, of_type: str | None) -> Val:
        if source.empty:
            return source
        if source.kind != "json" or source.type is None:
            raise Uncompilable(f"{name} of a value of unknown type")
        spec = _elements().get(source.type)
        if spec is None:
            raise Uncompilable(f"{name} of a {source.type}")
        if name in spec and spec[name][3] == "":
            if of_type is not None:
                raise Uncompilable(f"ofType() of {name}")
            keys = [name]
        else:
            keys = [k for k, s in spec.items() if s[3] == name]
            if not keys:  # the store holds R4 resources: this element is never there
                return Val("NULL", empty=True)
            if of_type is not None:
                keys = [k for k in keys if _is_a(spec[k][0], of_type)]
        if not keys:  # ofType() of a type the choice does not allow
            return Val("NULL", type=of_type)
        kinds = {spec[k][0] for k in keys}
        element_type = kinds.pop() if len(kinds) == 1 else None
        repeats = any(spec[k][1] for k in keys)
        if repeats and len(keys) > 1:
            raise Uncompilable(f"a repeating choice {name}")
        key = keys[0]
        if not source.many:
            if len(keys) > 1:
                sql = f"coalesce({', '.join(self.d.get(source.sql, k) for k in keys)})"
                return Val(sql, type=element_type)
            got = self.d.get(source.sql, key)
            if not repeats:
                return Val(got, type=element_type)
            if element_type is not None and element_type[:1].isupper():
                # FHIR JSON has no null in an array of objects (nor anywhere but a primitive
                # array, beside its extensions' array)
                return Val(f"coalesce({got}, {self.d.empty_array})", many=True, type=element_type)
            return Val(self._clean(got), many=True, type=element_type)
        # many in, many out: each item's value(s), in order
        base = self.rows_of(source)
        if len(keys) > 1:
            value = f"coalesce({', '.join(self.d.get(base.value, k) for k in keys)})"
        else:
            value = self.d.get(base.value, key)
        if not repeats:  # one value (or none) per item
            return self.many(
                replace(base, value=value, where=(*base.where, self.d.is_value(value))),
                element_type,
            )
        b = self.d.each(f"coalesce({value}, {self.d.empty_array})", self.alias())
        rows = SetForm(
            f"{base.source} CROSS JOIN {b.source}",
            b.value,
            f"{base.order}, {b.index}",
            (*base.where, b.not_null),
        )
        return self.many(rows, element_type)

    def rows_of(self, source: Val) -> SetForm:
        """The items of a many value as rows."""
        if source.rows is not None:
            return source.rows
        e = self.d.each(source.sql, self.alias())
        return SetForm(e.source, e.value, e.index)

    def many(self, rows: SetForm, kind: str | None) -> Val:
        sql = f"(SELECT {self.d.aggregate(rows.value, rows.order)} {rows.clause()})"
        return Val(sql, many=True, type=kind, rows=rows)

    def _clean(self, array: str) -> str:
        """A stored JSON array (or NULL) without its nulls (primitive arrays keep a null where
        only an extension is)."""
        e = self.d.each(f"coalesce({array}, {self.d.empty_array})", self.alias())
        return f"(SELECT {self.d.aggregate(e.value, e.index)} FROM {e.source} WHERE {e.not_null})"

    def indexer(self, node: Indexer, ctx: _Ctx) -> Val:
        source = self.expr(node.source, ctx)
        index = self.expr(node.index, ctx)
        if index.kind != "int" or index.many:
            raise Uncompilable("an index that is not an integer")
        if not source.many:
            return replace(source, sql=f"(CASE WHEN {index.sql} = 0 THEN {source.sql} END)")
        return Val(
            f"(CASE WHEN {index.sql} >= 0 THEN {self.d.at(source.sql, index.sql)} END)",
            type=source.type,
        )

    def call(self, node: Call, ctx: _Ctx) -> Val:
        name = node.name
        if name == "ofType" and isinstance(node.source, Member):
            wanted = type_name_of(node.args[0])
            assert wanted is not None
            member = node.source
            source = ctx.focus if member.source is None else self.expr(member.source, ctx)
            return self.member(source, member.name, wanted)
        source = ctx.focus if node.source is None else self.expr(node.source, ctx)
        if name == "first":
            if not source.many:
                return source
            if source.rows is not None:
                r = source.rows
                return Val(
                    f"(SELECT {r.value} {r.clause()} ORDER BY {r.order} LIMIT 1)", type=source.type
                )
            return Val(self.d.at(source.sql, "0"), type=source.type)
        if name in ("exists", "empty"):
            if node.args:
                source = self.where(source, node.args[0], ctx)
            if source.many and source.rows is not None:
                found = f"EXISTS (SELECT 1 {source.rows.clause()})"
            elif source.many:
                found = f"({self.d.length(source.sql)} > 0)"
            else:
                found = f"({self.json(source)} IS NOT NULL)"
            return Val(found if name == "exists" else f"(NOT {found})", "bool", type="boolean")
        if name == "where":
            return self.where(source, node.args[0], ctx)
        if name == "not":
            return Val(f"(NOT {self.boolean(source)})", "bool", type="boolean")
        if name == "join":
            return self.join(source, node, ctx)
        if name == "extension":
            return self.extension(source, node, ctx)
        if name == "getResourceKey":
            if not source.root:
                raise Uncompilable("getResourceKey() of a contained resource")
            return Val("(r.res_type || '/' || r.res_id)", "text", type="string")
        if name == "getReferenceKey":
            return self.reference_key(source, node)
        raise Uncompilable(f"{name}()")

    def where(self, source: Val, criteria: Node, ctx: _Ctx) -> Val:
        if source.kind != "json":
            raise Uncompilable("where() of a computed value")
        if not source.many:
            item = _Ctx(source, ctx.row_index, source)
            test = self.boolean(self.expr(criteria, item))
            return replace(source, sql=f"(CASE WHEN {test} THEN {source.sql} END)")
        base = self.rows_of(source)
        element = Val(base.value, type=source.type)
        test = self.boolean(self.expr(criteria, _Ctx(element, ctx.row_index, element)))
        return self.many(replace(base, where=(*base.where, f"({test})")), source.type)

    def join(self, source: Val, node: Call, ctx: _Ctx) -> Val:
        if source.kind != "json" or source.type not in STRING_TYPES:
            raise Uncompilable("join() of values that may not be strings")
        separator = self.text_param("")
        if node.args:
            sep = self.expr(node.args[0], ctx)
            if sep.kind != "text" or sep.many:
                raise Uncompilable("join() with a computed separator")
            separator = sep.sql
        if not source.many:
            return Val(f"coalesce({self.d.text_of(source.sql)}, '')", "text", type="string")
        e = self.d.each(source.sql, self.alias())
        sql = (
            f"(SELECT {self.d.string_agg(self.d.text_of(e.value), separator, e.index)} "
            f"FROM {e.source})"
        )
        return Val(sql, "text", type="string")

    def extension(self, source: Val, node: Call, ctx: _Ctx) -> Val:
        url = self.expr(node.args[0], ctx)
        if url.kind != "text" or url.many or source.kind != "json":
            raise Uncompilable("extension() here")
        if source.empty:
            return source
        base = self.rows_of(source if source.many else replace(source, sql=self.d.wrap(source.sql)))
        e = self.d.each(
            f"coalesce({self.d.get(base.value, 'extension')}, {self.d.empty_array})",
            self.alias(),
        )
        rows = SetForm(
            f"{base.source} CROSS JOIN {e.source}",
            e.value,
            f"{base.order}, {e.index}",
            (*base.where, f"{self.d.text_of(self.d.get(e.value, 'url'))} = {url.sql}"),
        )
        return self.many(rows, "Extension")

    def reference_key(self, source: Val, node: Call) -> Val:
        if source.kind != "json" or source.type != "Reference":
            raise Uncompilable("getReferenceKey() of something not a Reference")
        wanted = type_name_of(node.args[0]) if node.args else None
        wanted_sql = self.text_param(wanted) if wanted else None

        def key(reference: str) -> str:
            text = self.d.text_of(self.d.get(reference, "reference"))
            return self.d.reference_key(text, wanted_sql)

        if not source.many:
            return Val(key(source.sql), "text", type="string")
        e = self.d.each(source.sql, self.alias())
        value = self.d.json_of_text(key(e.value))
        sql = (
            f"(SELECT {self.d.aggregate(value, e.index)} FROM {e.source} "
            f"WHERE {key(e.value)} IS NOT NULL)"
        )
        return Val(sql, many=True, type="string")

    def binary(self, node: Binary, ctx: _Ctx) -> Val:
        op = node.op
        left, right = self.expr(node.left, ctx), self.expr(node.right, ctx)
        if op in ("and", "or"):
            sql = f"({self.boolean(left)} {op.upper()} {self.boolean(right)})"
            return Val(sql, "bool", type="boolean")
        if op in ("=", "!=", "<", "<=", ">", ">=") and (
            left.type in _DATES or right.type in _DATES
        ):
            return Val(self.temporal(op, left, right), "bool", type="boolean")
        if op in ("=", "!="):
            equal = self.equality(left, right)
            return Val(equal if op == "=" else f"(NOT {equal})", "bool", type="boolean")
        if left.many or right.many:
            raise Uncompilable(f"'{op}' of collections")
        if op in ("<", "<=", ">", ">="):
            if left.type not in _NUMBERS or right.type not in _NUMBERS:
                raise Uncompilable(f"'{op}' of values that are not numbers")
            a, b = self.number(left), self.number(right)
            return Val(f"({a} {op} {b})", "bool", type="boolean")
        raise Uncompilable(f"'{op}'")

    def temporal(self, op: str, left: Val, right: Val) -> str:
        """A comparison of two dates, dateTimes or instants, with FHIRPath's rule for values of
        different precision (empty) and for instants (compared as points in time)."""
        if left.many or right.many:
            raise Uncompilable(f"'{op}' of collections of dates")
        if left.type not in _DATES or right.type not in _DATES:
            raise Uncompilable(f"'{op}' of a date and something else")
        a, b = self.text(left), self.text(right)
        if op == "!=":
            return f"(NOT {self.d.temporal_compare(a, b, '=')})"
        return self.d.temporal_compare(a, b, op)

    def text(self, v: Val) -> str:
        if v.kind == "text":
            return v.sql
        if v.kind == "json":
            return self.d.text_of(v.sql)
        raise Uncompilable("text of a computed value")

    def equality(self, left: Val, right: Val) -> str:
        """FHIRPath ``=``: empty when a side is, false when their sizes differ, else the items'
        equality (here: one side a single value)."""
        if left.type in _TEMPORAL or right.type in _TEMPORAL:
            raise Uncompilable("= of dates or times")
        if left.type is None or right.type is None:
            raise Uncompilable("= of values of unknown type")
        if left.type[:1].isupper() or right.type[:1].isupper():
            raise Uncompilable("= of complex values")
        if left.kind == right.kind == "json" and not (left.empty or right.empty):
            raise Uncompilable("= of two elements")  # two stored strings may compare as dates
        if left.many and right.many:
            raise Uncompilable("= of two collections")
        if not left.many and not right.many:
            return self.d.equal(self.json(left), self.json(right))
        one, many = (right, left) if left.many else (left, right)
        single = self.json(one)
        size = self.d.length(many.sql)
        return (
            f"(CASE WHEN {single} IS NULL OR {size} = 0 THEN NULL WHEN {size} <> 1 THEN FALSE "
            f"ELSE {self.d.equal(single, self.d.at(many.sql, '0'))} END)"
        )

    def number(self, v: Val) -> str:
        if v.kind == "int":
            return v.sql
        if v.kind == "json":
            return self.d.number_of(v.sql)
        raise Uncompilable("a number from a computed value")


def compile_view(view: View, dialect: Dialect, filters: list[str] | None = None) -> Compiled:
    """The query of ``view`` (raises :class:`Uncompilable`). ``filters`` are further SQL
    conditions on ``r`` (the resources row), with their parameters bound by the caller."""
    return Compiler(view, dialect).compile(list(filters or []))
