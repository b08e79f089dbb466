"""Pulls: reading a source's database, each record kept in the inbox and mapped like a message.

Some sources are not sent but read: the RSUD's SIMRS Khanza database. A *puller* (registered
under the ``fhirhub.pullers`` entry-point group, like adapters; the engine never names one)
reads the records past a position, in the order of its positions, in batches. For each batch:

1. the batch's records are kept in the inbox (``Pipeline.receive_many``, one commit) as
   payloads of the puller's ``source``, whose adapter maps them like any other message; the
   same record read again is the same payload, hence the same inbox message, never stored
   twice;
2. then the watermark (``pull_watermarks``, one per source and database) moves to the batch's
   last position, so a pull that is stopped resumes after what it has kept;
3. then the new messages are handed to the workers (or processed here without a broker); a
   message left waiting by a pull that died is handed out by the sweep.

A puller may read again some records before the watermark (``lookback_days``): records that
changed since (a diagnosis entered after the visit was first pulled) are new payloads and
update the same resources; unchanged ones are duplicates and cost a look-up.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from fhirhub.config import Settings
from fhirhub.errors import FhirError
from fhirhub.ingest.adapters import Context
from fhirhub.ingest.service import IngestService
from fhirhub.model.instant import now_us
from fhirhub.storage.inbox_models import inbox_messages
from fhirhub.storage.pull_repository import PullRepository, Watermark

GROUP = "fhirhub.pullers"
TASK_PULL = "fhirhub.ingest.pull"  # the Celery task beat runs for each configured source
log = logging.getLogger("fhirhub.ingest.pull")


@dataclass(frozen=True)
class Pulled:
    """One record read: its position (text that sorts in reading order) and its payload."""

    position: str
    payload: bytes
    sender: str | None = None


@dataclass(frozen=True)
class Window:
    """What to read: records after ``after`` (the watermark), or from ``since`` when given;
    ``lookback_days`` before the watermark read again."""

    after: str | None
    since: date | None
    lookback_days: int


@runtime_checkable
class Puller(Protocol):
    name: str  # `fhirhub pull <name>`, and the watermark's source
    source: str  # the inbox source (adapter) its payloads are kept under
    content_type: str

    def pending(self, url: str, window: Window) -> int:
        """How many records ``read`` will give (for a progress bar; may be an estimate)."""
        ...

    def read(
        self, url: str, window: Window, context: Context, batch: int
    ) -> Iterator[list[Pulled]]:
        """The records of ``window`` in order of position, in batches of at most ``batch``."""
        ...


_registered: dict[str, Puller] = {}


def register(puller: Puller) -> None:
    """Add a puller by hand (tests); entry points are found without this."""
    _registered[puller.name] = puller


@cache
def _installed() -> dict[str, Puller]:
    found: dict[str, Puller] = {}
    for ep in entry_points(group=GROUP):
        puller = ep.load()
        found[ep.name] = puller() if isinstance(puller, type) else puller
    return found


def get(name: str) -> Puller:
    puller = _registered.get(name) or _installed().get(name)
    if puller is None:
        raise FhirError.single(404, "not-supported", f"No puller for source '{name}'")
    return puller


def configured_url(settings: Settings, name: str) -> str | None:
    """The database a puller reads, from its setting (``FHIRHUB_<NAME>_URL``)."""
    value = getattr(settings, f"{name}_url", None)
    return value if isinstance(value, str) and value else None


def lookback_days(settings: Settings, name: str) -> int:
    """Days before the watermark a pull reads again (``FHIRHUB_<NAME>_LOOKBACK_DAYS``)."""
    value = getattr(settings, f"{name}_lookback_days", 0)
    return value if isinstance(value, int) else 0


def scheduled(settings: Settings) -> dict[str, float]:
    """The sources beat pulls from, with their intervals in seconds: those whose database
    is set (``FHIRHUB_<NAME>_URL`` and ``FHIRHUB_<NAME>_PULL_INTERVAL``)."""
    out = {}
    for name in sorted(_installed()):
        interval = getattr(settings, f"{name}_pull_interval", None)
        if configured_url(settings, name) and isinstance(interval, int | float):
            out[name] = float(interval)
    return out


def target_of(url: str) -> tuple[str, str]:
    """(sha256 of the URL without its password, the URL without its password): the
    watermark's key and what operators are shown. A changed password is the same database."""
    shown = make_url(url).render_as_string(hide_password=True)
    return hashlib.sha256(shown.encode()).hexdigest(), shown


class SourceUnavailable(Exception):
    """The source database cannot be read (down, refused, a bad URL): nothing was lost, the
    watermark stays where the last kept batch left it."""


def _why(exc: SQLAlchemyError) -> str:
    # The driver's message only: SQLAlchemy's own text quotes the statement's parameters.
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@dataclass
class PullReport:
    read: int = 0  # records read
    kept: int = 0  # new inbox messages
    duplicates: int = 0  # records read again, unchanged: already in the inbox
    statuses: dict[str, int] = field(default_factory=dict)  # of the new messages, when done here
    position: str | None = None  # the watermark after the pull


def watermark(service: IngestService, name: str, url: str) -> Watermark | None:
    target, _ = target_of(url)
    with service.engine.connect() as conn:
        return PullRepository(conn).get(name, target)


def pull(
    service: IngestService,
    name: str,
    url: str,
    *,
    since: date | None = None,
    lookback_days: int = 0,
    batch: int = 500,
    unit: int = 50,
    store: bool = True,
    on_total: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> PullReport:
    """Read ``name``'s records past its watermark in ``url`` (from ``since`` when given) into
    the inbox, moving the watermark after each batch kept. With a broker the new records go to
    its workers; without one they are stored here, ``unit`` records per transaction
    (``Pipeline.process_many``), unless ``store`` is False (the sweep hands them out later).
    ``on_total`` gets the number of records to read, ``on_batch`` the size of each batch kept
    (progress)."""
    puller = get(name)
    target, location = target_of(url)
    current = watermark(service, name, url)
    window = Window(
        after=current.position if current is not None and since is None else None,
        since=since,
        lookback_days=lookback_days,
    )
    report = PullReport(position=current.position if current else None)
    pipeline = service.pipeline
    try:
        if on_total is not None:
            on_total(puller.pending(url, window))
        batches = puller.read(url, window, pipeline.context, batch)
    except SQLAlchemyError as exc:
        raise SourceUnavailable(f"{name}: {_why(exc)}") from None
    while True:
        try:
            rows = next(batches)
        except StopIteration:
            break
        except SQLAlchemyError as exc:
            raise SourceUnavailable(f"{name}: {_why(exc)}") from None
        if not rows:
            continue
        new: list[int] = []
        again: list[int] = []
        receipts = pipeline.receive_many(
            puller.source,
            [(row.payload, row.sender) for row in rows],
            content_type=puller.content_type,
        )
        for receipt in receipts:
            if not receipt.duplicate:
                new.append(receipt.id)
            elif receipt.status in ("received", "failed"):
                again.append(receipt.id)  # kept by a pull that stopped before handing it out
        last = max(row.position for row in rows)
        with service.engine.begin() as conn:
            mark = PullRepository(conn).advance(name, target, location, last, len(new), now_us())
        report.read += len(rows)
        report.kept += len(new)
        report.duplicates += len(rows) - len(new)
        report.position = mark.position
        if service.dispatcher.uses_broker:
            service.dispatcher.submit(new + again)
        elif store:
            waiting = new + again
            for k in range(0, len(waiting), max(1, unit)):
                _store_here(service, waiting[k : k + max(1, unit)])
        if new and not service.dispatcher.uses_broker:
            _count_statuses(service, new, report.statuses)
        log.info("pulled source=%s rows=%s new=%s", name, len(rows), len(new))
        if on_batch is not None:
            on_batch(len(rows))
    return report


def _store_here(service: IngestService, ids: list[int]) -> None:
    """Store kept records in this process, several per transaction: a record's unit of work is
    a few statements, so one commit per record would cost more than the work."""
    try:
        service.pipeline.process_many(ids)
    except Exception as exc:  # kept, and failed or waiting: the sweep hands them out again
        log.warning("pull storing failed records=%s error=%s", len(ids), type(exc).__name__)


def _count_statuses(service: IngestService, ids: list[int], into: dict[str, int]) -> None:
    m = inbox_messages
    with service.engine.connect() as conn:
        for status, n in conn.execute(
            select(m.c.status, func.count()).where(m.c.id.in_(ids)).group_by(m.c.status)
        ):
            into[status] = into.get(status, 0) + n
