"""The adapter protocol and the registry that finds adapters through entry points.

An adapter turns one source's payload into a canonical FHIR transaction Bundle. It is a package
in ``adapters/`` registered under the ``fhirhub.adapters`` entry-point group; the engine never
imports one by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from fhirhub.errors import FhirError
from fhirhub.ingest.regions import Regions, load_regions
from fhirhub.ingest.terminology import ConceptMaps, load_terminology

GROUP = "fhirhub.adapters"


@dataclass(frozen=True)
class Message:
    """One inbox message as an adapter sees it."""

    id: int
    source: str
    sender: str | None
    content_type: str | None
    received_at: int  # microseconds since the epoch, UTC
    payload: bytes


@dataclass(frozen=True)
class Merge:
    """A source's word that two of its records are one citizen (HL7 ADT^A40): the record known
    by ``retired`` was merged into the one known by ``surviving``. Identifiers are (system,
    value); ``where`` names the field that named the retired record, for an error."""

    retired: tuple[str, str]
    surviving: tuple[str, str]
    where: str = ""


@dataclass
class Mapped:
    """An adapter's result: the canonical transaction Bundle, who sent it, and the merges the
    source declared (stored after the Bundle, in the same transaction; docs/mpi.md)."""

    bundle: dict[str, Any]
    sender: str | None = None  # the facility code, e.g. PKM05
    organization: str | None = None  # reference to the sender's Organization, for Provenance
    merges: list[Merge] = field(default_factory=list)


@dataclass
class Context:
    """What the engine lends an adapter: its content folders, read once and cached."""

    mappings_dir: Path
    terminology_dir: Path
    notes: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def regions(self) -> Regions:
        return load_regions(self.terminology_dir / "regions")

    @property
    def concept_maps(self) -> ConceptMaps:
        return load_terminology(self.terminology_dir)  # reloaded when a file changes


@runtime_checkable
class Adapter(Protocol):
    """A source: its name (the inbox's ``source``) and its mapping to canonical FHIR."""

    name: str

    def map(self, message: Message, context: Context) -> Mapped:
        """The canonical transaction Bundle for ``message``; FhirError if it cannot be one."""
        ...

    def claims(self, bundle: dict[str, Any], context: Context) -> bool:
        """Whether a Bundle posted to ``POST /fhir`` was sent by this source (its records say
        so): a claimed Bundle goes through the inbox and this adapter, not straight to storage.
        Cheap, and never raises."""
        ...


# Optional, looked up with getattr:
# - ``media_types: tuple[str, ...]``: the payload types the adapter reads (``speaking``);
# - ``message_key(payload: bytes) -> str | None``: the message's own id, when its source gives
#   one (HL7 v2: sending facility + MSH-10); the inbox then takes a payload with a key it holds
#   to be that message sent again, whatever its bytes (``Pipeline.receive``).


_registered: dict[str, Adapter] = {}


def register(adapter: Adapter) -> None:
    """Add an adapter by hand (tests); entry points are found without this."""
    _registered[adapter.name] = adapter


def _discover() -> None:
    for name, adapter in _installed().items():
        _registered.setdefault(name, adapter)


@cache
def _installed() -> dict[str, Adapter]:
    """The adapters installed as entry points, looked up once per process: the look-up reads
    every installed distribution's metadata (milliseconds per POST /fhir, more with every
    package in the environment)."""
    found: dict[str, Adapter] = {}
    for ep in entry_points(group=GROUP):
        adapter = ep.load()
        found[ep.name] = adapter() if isinstance(adapter, type) else adapter
    return found


def names() -> list[str]:
    _discover()
    return sorted(_registered)


def claiming(bundle: dict[str, Any], context: Context) -> str | None:
    """The name of the source whose adapter claims ``bundle``, if one does."""
    _discover()
    for name in sorted(_registered):
        if _registered[name].claims(bundle, context):
            return name
    return None


def speaking(media_type: str) -> str | None:
    """The name of the source whose adapter reads payloads of ``media_type`` (its optional
    ``media_types``), e.g. the one that reads HL7 v2 for the MLLP listener."""
    _discover()
    for name in sorted(_registered):
        if media_type in getattr(_registered[name], "media_types", ()):
            return name
    return None


def get(name: str) -> Adapter:
    if name not in _registered:
        _discover()
    try:
        return _registered[name]
    except KeyError:
        raise FhirError.single(404, "not-supported", f"No adapter for source '{name}'") from None
