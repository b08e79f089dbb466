"""``$viewdefinition-run``: https://sql-on-fhir.org/ig/latest/OperationDefinition-ViewDefinitionRun.html

:func:`parse_request` reads the operation's parameters (a ``Parameters`` body and/or the query)
into a :class:`RunRequest`; :func:`start` runs it and returns a :class:`RowStream` whose first
batch is already computed, so a bad view or bad data is an OperationOutcome, not a broken
stream. With inline ``resource`` parameters only they are read (in memory); otherwise the store
is, through the SQL compiler (``fhirhub.views.sql_run``), in bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from fhirhub.errors import FhirError, bad_request
from fhirhub.model.instant import parse_instant
from fhirhub.model.resource_types import is_valid_id
from fhirhub.views.definition import View, parse_view
from fhirhub.views.errors import ViewError
from fhirhub.views.output import FORMATS, MEDIA_TYPES, encode, encode_parquet, parquet_missing
from fhirhub.views.run import run_view
from fhirhub.views.sql_run import Scope, stream_rows

_VALUE_KEYS = ("valueString", "valueCode", "valueInstant", "valueDateTime", "valueUri")


@dataclass
class RunRequest:
    view: View
    format: str = "json"
    limit: int | None = None
    scope: Scope = field(default_factory=Scope)
    resources: list[dict[str, Any]] | None = None  # inline: only these are read


def _text(param: Mapping[str, Any], name: str) -> str:
    for key in _VALUE_KEYS:
        if isinstance(param.get(key), str):
            return str(param[key])
    raise bad_request(f"{name} needs a string value", f"Parameters.parameter.{name}")


def _parameters(body: Any) -> list[Mapping[str, Any]]:
    if body is None:
        return []
    if not isinstance(body, Mapping) or body.get("resourceType") != "Parameters":
        raise bad_request("The body must be a Parameters resource", "Parameters", "structure")
    params = body.get("parameter", [])
    if not isinstance(params, list) or not all(isinstance(p, Mapping) for p in params):
        raise bad_request("parameter must be a list of objects", "Parameters.parameter")
    return params


def parse_request(
    body: Any,
    query: list[tuple[str, str]],
    *,
    stored_view: Callable[[str], Any],
    view_id: str | None = None,
) -> RunRequest:
    """The run a request asks for. ``stored_view(id)`` gives a ViewDefinition's JSON (for
    ``viewReference`` and ``ViewDefinition/{id}/$viewdefinition-run``) or raises 404."""
    view_json: Any = None
    fmt: str | None = None
    limit: int | None = None
    patient: str | None = None
    since: int | None = None
    resources: list[dict[str, Any]] | None = None
    if view_id is not None:
        view_json = stored_view(view_id)
    for i, param in enumerate(_parameters(body)):
        name = param.get("name")
        where = f"Parameters.parameter[{i}]"
        if name == "viewResource":
            if view_json is not None:
                raise bad_request("Give one view only", where)
            view_json = param.get("resource")
            if view_json is None:
                raise bad_request("viewResource needs a resource", f"{where}.resource", "required")
        elif name == "viewReference":
            if view_json is not None:
                raise bad_request("Give one view only", where)
            ref = param.get("valueReference", {})
            text = ref.get("reference") if isinstance(ref, Mapping) else None
            if not isinstance(text, str):
                text = _text(param, "viewReference")
            view_json = stored_view(text.rsplit("/", 1)[-1])
        elif name == "resource":
            resource = param.get("resource")
            if not isinstance(resource, Mapping) or not isinstance(
                resource.get("resourceType"), str
            ):
                raise bad_request("resource needs a FHIR resource", f"{where}.resource")
            resources = [*(resources or []), dict(resource)]
        elif name == "_format":
            fmt = _text(param, "_format")
        elif name == "_limit":
            value = param.get("valueInteger", param.get("valuePositiveInt"))
            limit = _limit(value, f"{where}.valueInteger")
        elif name == "patient":
            ref = param.get("valueReference", {})
            text = ref.get("reference") if isinstance(ref, Mapping) else None
            patient = _patient(text if isinstance(text, str) else _text(param, "patient"), where)
        elif name == "_since":
            since = parse_instant(_text(param, "_since"), f"{where}.valueInstant")
        else:
            raise bad_request(f"Unknown parameter {name!r}", f"{where}.name", "not-supported")
    for key, value in query:
        if key == "_format":
            fmt = value
        elif key == "_limit":
            limit = _limit(value, "_limit")
        elif key == "patient":
            patient = _patient(value, "patient")
        elif key == "_since":
            since = parse_instant(value, "_since")
        elif key == "viewReference" and view_json is None:
            view_json = stored_view(value.rsplit("/", 1)[-1])
        elif key not in ("_pretty",):
            raise bad_request(f"Unknown parameter {key!r}", key, "not-supported")
    if view_json is None:
        raise bad_request("Give the view: viewResource or viewReference", "Parameters", "required")
    chosen = FORMATS.get((fmt or "json").split(";")[0].strip().lower())
    if chosen is None:
        raise FhirError.single(
            400,
            "not-supported",
            f"_format {fmt!r} is not supported; use json, ndjson, csv or parquet",
            "_format",
        )
    if chosen == "parquet" and (missing := parquet_missing()) is not None:
        raise FhirError.single(415, "not-supported", missing, "_format")
    return RunRequest(parse_view(view_json), chosen, limit, Scope(patient, since), resources)


def _limit(value: Any, where: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request("_limit must be a positive integer", where)
    return value


def _patient(text: str, where: str) -> str:
    ident = text.removeprefix("Patient/")
    if not is_valid_id(ident):
        raise bad_request(f"patient {text!r} is not a Patient reference", where)
    return ident


class RowStream:
    """The encoded output of one run: iterate it for the bytes (the connection it reads from
    is closed when the iteration ends)."""

    def __init__(self, request: RunRequest, engine: Engine | None) -> None:
        self.request = request
        self.media_type = MEDIA_TYPES[request.format]
        self._conn: Connection | None = None
        self._source: Generator[dict[str, Any]] | None = None
        if request.resources is not None or engine is None:
            rows: Iterator[dict[str, Any]] = run_view(request.view, request.resources or [])
        else:
            self._conn = engine.connect()
            self._conn.execution_options(readonly=True)
            rows = self._source = stream_rows(self._conn, request.view, request.scope)
        if request.limit is not None:
            rows = islice(rows, request.limit)
        if request.format == "parquet":
            self._chunks = encode_parquet(rows, request.view.root.all_columns)
        else:
            self._chunks = encode(rows, request.format, request.view.column_names)
        try:
            self._first = next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._source is not None:
            self._source.close()  # closes the cursor the rows come from
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield self._first
            yield from self._chunks
        finally:
            self.close()


def start(request: RunRequest, engine: Engine) -> RowStream:
    """Run ``request``: the first batch is computed here (errors raise here, as ViewError)."""
    try:
        return RowStream(request, engine)
    except ViewError:
        raise
    except RecursionError:
        raise ViewError("the view or a resource nests too deeply") from None


def catalogue_view(directory: Path, view_id: str) -> Any:
    """The ViewDefinition ``view_id`` of the catalogue (``<directory>/<id>.json``), or 404."""
    if not is_valid_id(view_id):
        raise bad_request(f"{view_id!r} is not a valid id", "id")
    path = directory / f"{view_id}.json"
    if not path.is_file():
        raise FhirError.single(404, "not-found", f"ViewDefinition/{view_id} is not known")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ViewError(
            f"ViewDefinition/{view_id} of the catalogue cannot be read: {type(exc).__name__}",
            "ViewDefinition",
            "structure",
        ) from None
