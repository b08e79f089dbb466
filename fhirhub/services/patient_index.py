"""The patient index in the one write path: every stored Patient belongs to exactly one Person.

:class:`PatientIndex` is called by :meth:`fhirhub.services.writes.Writer.flush` with the Patient
versions it has just stored, in the same database transaction, so no route and no adapter can
skip it, and a reader never sees a Patient without its Person. For each record it

1. extracts its features and blocking keys (``fhirhub.mpi.features``) and locks the keys, so two
   writers of one citizen's records take turns (PostgreSQL advisory locks; SQLite writers are
   serial already);
2. reads its candidates through ``mpi_blocks`` (each block capped; an overflowing block sends the
   record to review instead of being scored), scores each (``fhirhub.mpi.score.decide``) and
   applies what people decided about a pair (``mpi_decisions``: never undone automatically);
3. joins the best Person it links to (every record of that Person free of a forbidding rule),
   keeps a record where a person put it (``level4``), or starts a new Person; other plausible
   Persons become review ``Task``s (``code`` = ``mpi-review``);
4. rewrites each Person it touched (``link[]`` and demographics by the survivorship rules of
   docs/mpi.md), deletes a Person left with no records, and records every link change as a
   ``Provenance`` (who, when, score, why).

Person, Task and Provenance go through the same Writer (``put_internal``), so they are versioned
and searchable like any resource. Logs and messages name ids only.
"""

from __future__ import annotations

import bisect
import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from importlib import resources as package_files
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table

from fhirhub.errors import FhirError
from fhirhub.model.instant import to_instant
from fhirhub.model.json import loads
from fhirhub.mpi import store
from fhirhub.mpi.compare import nik_guard
from fhirhub.mpi.features import (
    Features,
    blocking_keys,
    decode,
    encode,
    extract,
    nik_neighbourhood,
)
from fhirhub.mpi.score import LINK, NO_LINK, REVIEW, Decision, Model, decide, train
from fhirhub.mpi.store import LEVEL3, LEVEL4, Membership
from fhirhub.runtime import collector_frozen, collector_paused
from fhirhub.search.indexing import index_rows_borrowing
from fhirhub.storage.repository import Write

TASK_CODE_SYSTEM = "https://fhirhub.baubaukota.go.id/CodeSystem/mpi"
REVIEW_CODE = "mpi-review"
LINK_CHANGE_EXTENSION = "https://fhirhub.baubaukota.go.id/StructureDefinition/mpi-link-change"
INDEX_SOURCE = "https://fhirhub.baubaukota.go.id/source/patient-index"
MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
INDEX_AGENT = "fhirhub patient index"
MAX_BLOCK = 200  # records an identifier's blocking key may hold and still be scored
# A name, date or address key (name + birth date, birth date + kelurahan, name + postcode, ...)
# is evidence only while it is rare: past this many records it is skipped (at a million persons
# "MUHAMMAD" in one postcode is thousands of records, none of them a better candidate).
WEAK_BLOCK = 25
# Kinds of blocking key that name one citizen: a crowd under one of them (a NIK on 300 records)
# is a data problem a person must look at. A crowded name or address key is only skipped.
IDENTIFIER_KEYS = frozenset({"nik", "bpjs", "ihs", "mrn", "id", "nikibu-dob"})
_IDS = uuid.UUID("6c1f3c52-62a4-4a7e-9a52-3f0cf6a1d8f1")  # namespace of derived Task ids
# Whose word wins for identity (NIK, name, birth date, sex): national registries first.
_SOURCE_RANK = ("satusehat", "bpjs", "rsud", "puskesmas")
# A Person's elements taken whole from one of its records (docs/mpi.md, survivorship): the
# most trusted record's identity, the latest record's contact details.
IDENTITY = ("name", "gender", "birthDate")
CONTACT = ("telecom", "address")
DEMOGRAPHICS = frozenset(IDENTITY + CONTACT)


class IndexWriter(Protocol):
    """What the index needs of :class:`fhirhub.services.writes.Writer`."""

    @property
    def conn(self) -> Connection: ...

    @property
    def now(self) -> int: ...

    def put_internal(
        self, resource: dict[str, Any], new: bool = False, index: Any = None
    ) -> int: ...

    def delete_internal(self, res_type: str, res_id: str) -> int: ...

    def current_body(self, res_type: str, res_id: str) -> dict[str, Any] | None: ...

    def prefetch(self, keys: list[tuple[str, str]]) -> None: ...

    def flush(self) -> None: ...

    def stage_rows(self, table: Table, rows: list[dict[str, Any]]) -> None: ...


# --- the model -------------------------------------------------------------------------------


@cache
def default_model() -> Model:
    """The model shipped with fhirhub (``fhirhub/mpi/default_model.json``), estimated without
    labels by ``scripts/train_default_model.py``; ``fhirhub mpi rebuild`` replaces it with one
    estimated from the store's own records."""
    text = package_files.files("fhirhub.mpi").joinpath("default_model.json").read_text()
    return Model.from_json(text)


MODEL_RECHECK = 10.0  # seconds a process uses its model before asking for a newer one
_loaded: dict[str, tuple[str | None, Model, float]] = {}  # database url -> version, model, when


def load_model(conn: Connection) -> Model:
    """The model stored by the last ``fhirhub mpi rebuild`` (else the shipped one). Each process
    asks the database at most every MODEL_RECHECK seconds whether a newer one was stored."""
    where = str(conn.engine.url)
    now = time.monotonic()
    cached = _loaded.get(where)
    if cached is not None and now - cached[2] < MODEL_RECHECK:
        return cached[1]
    version = store.get_state(conn, "model-version")
    if cached is not None and cached[0] == version:
        model = cached[1]
    elif version is None:
        model = default_model()
    else:
        text = store.get_state(conn, "model")
        model = Model.from_json(text) if text else default_model()
    model = model.at_size(store.count_records(conn))
    _loaded[where] = (version, model, now)
    return model


def save_model(conn: Connection, model: Model) -> None:
    version = str(uuid.uuid4())
    store.set_state(conn, "model", model.to_json())
    store.set_state(conn, "model-version", version)
    sized = model.at_size(store.count_records(conn))
    _loaded[str(conn.engine.url)] = (version, sized, time.monotonic())


# --- placing a record ------------------------------------------------------------------------


@dataclass
class _PersonView:
    """What a record's candidates say about one Person."""

    person_id: str
    best: tuple[float, str, Decision] | None = None  # (probability, patient, decision)
    link: float = -1.0  # the best probability of a linking member, -1 when none
    forbidden: bool = False
    human_same: bool = False


@dataclass
class _Change:
    patient_id: str
    person_id: str
    action: str  # "link" or "unlink"
    why: str
    probability: float | None
    who: str


@dataclass
class _Flush:
    """Persons touched and link changes made while handling one batch of Patients."""

    persons: set[str] = field(default_factory=set)
    new_persons: set[str] = field(default_factory=set)  # made in this batch: nobody else knows
    changes: list[_Change] = field(default_factory=list)
    pending: dict[str, Membership] = field(default_factory=dict)  # not yet written
    moves: dict[str, Membership] = field(default_factory=dict)  # every move of the batch
    fresh: set[str] = field(default_factory=set)  # records placed for the first time
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # the batch's records
    # the batch's records' features to store: id -> (lastUpdated, encoded); and those stored
    features: dict[str, store.Stored] = field(default_factory=dict)
    stored: set[str] = field(default_factory=set)
    rows: dict[str, Any] = field(default_factory=dict)  # the records' search index rows
    # pairs to review: (record, other record or None, decision, reasons), written at the end
    reviews: list[tuple[str, str | None, Decision | None, list[str]]] = field(default_factory=list)


@dataclass
class _Batch:
    """What one batch of records needs, read in a few statements for the whole batch."""

    features: dict[str, Features]  # the batch's records and their candidates
    found: dict[str, set[str]]  # record -> candidates sharing a key (blocks within the cap)
    overflow: dict[str, list[str]]  # record -> its keys whose block is over the cap
    human: dict[str, dict[str, bool]]  # record -> other record -> "same" decided by a person
    where: dict[str, Membership]  # record -> its Person now (kept current by _move)
    # Person -> its records as stored, read for the Persons of all the batch's records when
    # :meth:`PatientIndex._others` is first asked (None until then)
    members: dict[str, dict[str, str]] | None = None


class PatientIndex:
    def __init__(self, model: Callable[[Connection], Model] = load_model) -> None:
        self._model = model

    # The write path's entry: the Patient versions a flush has just stored.
    def on_patients(self, w: IndexWriter, writes: Sequence[Write]) -> None:
        latest: dict[str, Write] = {}
        for x in writes:
            latest[x.res_id] = x
        bodies = {pid: _body_of(x) for pid, x in latest.items() if x.content is not None}
        deleted = [pid for pid, x in latest.items() if x.content is None]
        created = {x.res_id for x in writes if x.version == 1}
        stamps = {pid: latest[pid].last_updated for pid in bodies}
        rows = {pid: latest[pid].index for pid in bodies if latest[pid].index is not None}
        self._process(w, bodies, deleted, changed=True, created=created, stamps=stamps, rows=rows)

    def rematch(
        self,
        w: IndexWriter,
        patient_ids: Sequence[str],
        known: dict[str, Features] | None = None,
        stamps: dict[str, int] | None = None,
    ) -> int:
        """Place existing records again (``fhirhub mpi rebuild``, after the blocking keys were
        rebuilt; ``known``: features it extracted already, from the versions of ``stamps``; both
        are brought to the current version of a record written since); returns how many moved
        to another Person. The features of each record's current version are stored with it."""
        current = store.patient_versions(w.conn, patient_ids)
        bodies = {p: _as_dict(b) for p, (_, b) in current.items()}
        at = {p: v for p, (v, _) in current.items()}
        if known is not None and stamps is not None:
            # a record written since the rebuild read it: placed, and its features stored, as
            # it is now (a block read takes stored features for the current version's)
            for p in bodies:
                if stamps.get(p, at[p]) != at[p]:
                    known[p], stamps[p] = extract(bodies[p]), at[p]
        return self._process(w, bodies, [], changed=False, stamps=at, known=known)

    def _process(
        self,
        w: IndexWriter,
        bodies: dict[str, dict[str, Any]],
        deleted: list[str],
        changed: bool,
        created: set[str] | frozenset[str] = frozenset(),
        stamps: dict[str, int] | None = None,
        known: dict[str, Features] | None = None,
        rows: dict[str, Any] | None = None,
    ) -> int:
        """Place ``bodies`` (``stamps``: when each was written, so that the features extracted
        here serve the records that meet it later; ``known``: features already extracted;
        ``rows``: their search index rows, where the write made them) and remove
        ``deleted``."""
        conn = w.conn
        known = known or {}
        features = {pid: known.get(pid) or extract(b) for pid, b in bodies.items()}
        for pid, at in (stamps or {}).items():
            _remember(pid, at, features[pid])
        keys = {pid: blocking_keys(f) for pid, f in features.items()}
        # one record more than a block's cap beside the record itself tells a crowded block
        limits = {k: cap_of(k) + 2 for ks in keys.values() for k in ks}
        weak = {k for k in limits if not names_a_citizen(k)}
        # Two records held to NIKs more than one typo apart never link (the different-nik
        # rule): their writers need not take turns on a name, date or address key they share,
        # only against a writer of a record without one. Records one typo apart share a key of
        # their NIKs' neighbourhood, locked exclusive.
        niks = {pid: nik_guard(f) for pid, f in features.items()}
        unguarded = {k for pid, ks in keys.items() if niks[pid] is None for k in ks}
        guards = {g for n in niks.values() if n is not None for g in nik_neighbourhood(n)}
        got = store.gather(
            conn,
            keys,
            limits,
            replace=changed,
            created=created,
            deleted=deleted,
            weak=weak,
            shared=weak - unguarded,
            guards=guards,
            stamped=not known,  # a rebuild knows every record's features
        )
        found: dict[str, set[str]] = {}
        overflow: dict[str, list[str]] = {}
        for pid, ks in keys.items():
            found[pid] = set()
            for k in ks:
                others = [o for o in got.blocks.get(k, ()) if o != pid]
                if k in got.full or len(others) > cap_of(k):
                    overflow.setdefault(pid, []).append(k)
                else:
                    found[pid].update(others)
        human = got.decided
        where = got.where
        blocked = set().union(*found.values())
        wanted = blocked.union(*(set(h) for h in human.values())) - set(features)
        versions = {o: got.stamps[o] for o in wanted if o in got.stamps}
        # A rebuild's candidates (every record's features known, their Persons read with the
        # blocks); the others decided by a person, outside every block, or new since the
        # rebuild read every record, are looked up.
        ready = {o for o in wanted if o in known and (o in blocked or o in where)}
        elsewhere = wanted - set(versions) - ready
        if elsewhere:
            versions.update(store.patient_stamps(conn, elsewhere))
            where.update(store.memberships(conn, elsewhere))
        features.update({o: known[o] for o in ready | set(versions) if o in known})
        features.update(
            _stored_features(
                conn, {o: v for o, v in versions.items() if o not in known}, got.features
            )
        )
        batch = _Batch(features, found, overflow, human, where)
        model = self._model(conn)
        todo = _Flush(bodies=bodies, rows=rows or {})
        for pid, at in (stamps or {}).items():
            todo.features[pid] = (at, encode(features[pid]))
        for pid in sorted(deleted):
            self._remove(w, pid, where.pop(pid, None), todo)
        moved = 0
        for pid in sorted(bodies):
            moved += self._place(w, model, pid, batch, todo, refresh=changed)
        self._finish(w, todo, staged=True)  # the flush that called this stores them next
        return moved

    def _place(
        self, w: IndexWriter, model: Model, pid: str, batch: _Batch, todo: _Flush, refresh: bool
    ) -> int:
        cur = batch.where.get(pid)
        human = batch.human.get(pid, {})
        ids = batch.found.get(pid, set()) | {o for o, same in human.items() if same}
        views = self._score(model, batch.features[pid], ids, batch, human)
        linkable = sorted(
            (v for v in views.values() if not v.forbidden and (v.human_same or v.link >= 0)),
            # ties go by the record that links best, not by the Persons' ids (random UUIDs):
            # the same records make the same Persons in every rebuild
            key=lambda v: (not v.human_same, -v.link, v.best[1] if v.best else "", v.person_id),
        )
        target = linkable[0] if linkable else None
        stay = cur is not None and (
            cur.assurance == LEVEL4
            or (target is not None and target.person_id == cur.person_id)
            or (target is None and not self._others(w, cur.person_id, pid, batch, todo))
        )
        if stay:
            assert cur is not None
            destination = cur.person_id
            if refresh:
                todo.persons.add(destination)
        else:
            if target is None:
                destination = str(uuid.uuid4())
                todo.new_persons.add(destination)
                why, probability = "no linking candidate: a new person", None
            else:
                destination = target.person_id
                probability = 1.0 if target.human_same else target.link
                why = "decided by a person" if target.human_same else "automatic link"
            assurance = LEVEL4 if target is not None and target.human_same else LEVEL3
            self._move(w, pid, cur, destination, assurance, why, probability, INDEX_AGENT, todo)
            batch.where[pid] = Membership(destination, assurance)
        joined = set()
        for v in linkable[1:]:  # the record links two Persons: one citizen, if nothing forbids
            if not v.human_same and self._join(
                w, model, v.person_id, destination, pid, batch, todo
            ):
                joined.add(v.person_id)
        for v in views.values():
            if v.person_id in joined or v.person_id == destination or v.forbidden or v.best is None:
                continue
            _, other, decision = v.best
            if decision.band in (LINK, REVIEW):
                todo.reviews.append((pid, other, decision, []))
        crowded = sorted({k.split(":")[0] for k in batch.overflow.get(pid, ())} & IDENTIFIER_KEYS)
        if crowded and target is None:
            reasons = [f"blocks over {MAX_BLOCK} records: {k}" for k in crowded]
            todo.reviews.append((pid, None, None, reasons))
        return 0 if stay or cur is None else 1

    def _join(
        self,
        w: IndexWriter,
        model: Model,
        absorbed: str,
        into: str,
        through: str,
        batch: _Batch,
        todo: _Flush,
    ) -> bool:
        """Move every record of the Person ``absorbed`` into ``into``, as clustering joins two
        clusters a record links to both: only if every record of ``absorbed`` was placed
        automatically, and no pair across the two Persons is forbidden by a rule or a person's
        decision. Returns whether it did."""
        self._write_memberships(w, todo)
        mine = store.members_many(w.conn, [absorbed, into])
        theirs, ours = mine.get(absorbed, {}), mine.get(into, {})
        if not theirs or any(a != LEVEL3 for a in theirs.values()):
            return False
        decided = store.decisions_many(w.conn, theirs)
        if any(o in ours and not same for p in theirs for o, same in decided.get(p, {}).items()):
            return False
        wanted = (set(theirs) | set(ours)) - set(batch.features)
        for other, body in store.patient_bodies(w.conn, wanted).items():
            batch.features[other] = extract(_as_dict(body))
        for a in theirs:
            for b in ours:
                fa, fb = batch.features.get(a), batch.features.get(b)
                if fa is None or fb is None:
                    return False
                d = decide(model, fa, fb)
                if d.band == NO_LINK and d.reasons:
                    return False
        why = f"joined: Patient/{through} links both persons"
        for p in sorted(theirs):
            self._move(
                w, p, Membership(absorbed, LEVEL3), into, LEVEL3, why, None, INDEX_AGENT, todo
            )
            batch.where[p] = Membership(into, LEVEL3)
        return True

    def _score(
        self,
        model: Model,
        f: Features,
        ids: Iterable[str],
        batch: _Batch,
        human: dict[str, bool],
    ) -> dict[str, _PersonView]:
        views: dict[str, _PersonView] = {}
        for other in sorted(ids):  # ties go the same way in every process (str hashes vary)
            m = batch.where.get(other)
            theirs = batch.features.get(other)
            if m is None or theirs is None:  # deleted, or new in this batch and not placed yet
                continue
            d = decide(model, f, theirs)
            v = views.setdefault(m.person_id, _PersonView(m.person_id))
            same = human.get(other)
            if same is False or (d.band == NO_LINK and d.reasons):
                v.forbidden = True
            if same is True:
                v.human_same = True
            if d.band == LINK or same is True:
                v.link = max(v.link, d.probability)
            if v.best is None or d.probability > v.best[0]:
                v.best = (d.probability, other, d)
        return views

    def _move(
        self,
        w: IndexWriter,
        pid: str,
        cur: Membership | None,
        destination: str,
        assurance: str,
        why: str,
        probability: float | None,
        who: str,
        todo: _Flush,
    ) -> None:
        if cur is not None and cur.person_id != destination:
            todo.persons.add(cur.person_id)
            todo.changes.append(_Change(pid, cur.person_id, "unlink", why, probability, who))
        todo.pending[pid] = todo.moves[pid] = Membership(destination, assurance)
        if cur is None:
            todo.fresh.add(pid)
        todo.persons.add(destination)
        if cur is None or cur.person_id != destination or cur.assurance != assurance:
            todo.changes.append(_Change(pid, destination, "link", why, probability, who))

    def _remove(self, w: IndexWriter, pid: str, cur: Membership | None, todo: _Flush) -> None:
        if cur is None:  # (its blocking keys were dropped by store.gather)
            return
        store.drop_membership(w.conn, pid)
        todo.persons.add(cur.person_id)
        change = _Change(pid, cur.person_id, "unlink", "record deleted", None, INDEX_AGENT)
        todo.changes.append(change)

    def _finish(self, w: IndexWriter, todo: _Flush, staged: bool = False) -> None:
        """Rewrite every Person touched (each under its lock, taken in one order), then record
        the changes as Provenance naming the Persons' new versions. ``staged``: the new
        membership rows go with the Writer's next writes (see :meth:`_write_memberships`)."""
        if todo.reviews:
            self._write_reviews(w, todo)
        if not todo.persons:
            self._store_features(w, todo)
            return
        ordered = sorted(todo.persons)
        known = [p for p in ordered if p not in todo.new_persons]
        store.lock(w.conn, [f"person:{p}" for p in known])
        linked = store.members_many(w.conn, known)  # as stored, before the batch's moves
        for pid in todo.moves:
            for members in linked.values():
                members.pop(pid, None)
        for pid, m in todo.moves.items():
            linked[m.person_id][pid] = m.assurance
        self._write_memberships(w, todo, staged=staged)
        self._store_features(w, todo)
        wanted = {p for m in linked.values() for p in m} - set(todo.bodies)
        bodies = {p: _as_dict(b) for p, b in store.patient_bodies(w.conn, wanted).items()}
        bodies.update(todo.bodies)
        w.prefetch([("Person", p) for p in known])
        versions: dict[str, int] = {}
        for person_id in ordered:
            mine = linked.get(person_id)
            if not mine:
                versions[person_id] = w.delete_internal("Person", person_id)
                continue
            records = {pid: bodies[pid] for pid in mine if pid in bodies}
            body = person_body(person_id, mine, records)
            versions[person_id] = w.put_internal(
                body, new=person_id in todo.new_persons, index=_person_rows(body, records, todo)
            )
        by_agent: dict[str, list[_Change]] = {}
        for change in todo.changes:
            by_agent.setdefault(change.who, []).append(change)
        for who, changes in sorted(by_agent.items()):
            w.put_internal(_provenance(who, changes, versions, w.now), new=True)

    def _write_memberships(self, w: IndexWriter, todo: _Flush, staged: bool = False) -> None:
        """Write the batch's pending moves; ``staged``: the new rows are inserted with the
        Writer's next writes (one round trip fewer), which only a caller that flushes at once
        may ask for: until then the records read as having no Person."""
        if not todo.pending:
            return
        if staged:
            table, rows = store.membership_rows(
                w.conn, todo.pending, w.now, todo.fresh, todo.features
            )
            w.stage_rows(table, rows)
        else:
            store.set_memberships(w.conn, todo.pending, w.now, todo.fresh, todo.features)
        todo.stored.update(p for p in todo.pending if p in todo.features)
        todo.pending.clear()
        todo.fresh.clear()  # their rows exist now

    def _store_features(self, w: IndexWriter, todo: _Flush) -> None:
        """Store the features of the batch's records that stay in their Person (the others
        went with their new membership rows)."""
        rest = {p: v for p, v in todo.features.items() if p not in todo.stored}
        store.set_features(w.conn, rest)
        todo.stored.update(rest)

    def _others(
        self, w: IndexWriter, person_id: str, pid: str, batch: _Batch, todo: _Flush
    ) -> bool:
        """Whether the Person has records other than ``pid`` (this batch's moves included).
        The first question reads the records of the Persons of all the batch's records, in one
        statement: a record updated without a new candidate (most updates) asked once a
        record before."""
        if batch.members is None:
            persons = {batch.where[p].person_id for p in todo.bodies if p in batch.where}
            found = store.members_many(w.conn, persons)
            batch.members = {person: found.get(person, {}) for person in persons}
        stored = batch.members.get(person_id)
        if stored is None:  # a Person another one was joined into: as stored now
            self._write_memberships(w, todo)
            return any(p != pid for p in store.members(w.conn, person_id))
        # as stored (whichever of the batch's moves were written), then the batch's moves
        if any(
            p != pid and (p not in todo.moves or todo.moves[p].person_id == person_id)
            for p in stored
        ):
            return True
        return any(p != pid and m.person_id == person_id for p, m in todo.moves.items())

    def _write_reviews(self, w: IndexWriter, todo: _Flush) -> None:
        """An open ``mpi-review`` Task for each pair the batch found, unless one exists (open
        or decided): whether they do is read for all of them at once."""
        tasks: dict[str, tuple[str, str | None, Decision | None, list[str]]] = {}
        for pid, other, decision, reasons in todo.reviews:
            pair = sorted(p for p in (pid, other) if p)
            task_id = str(uuid.uuid5(_IDS, "mpi-review|" + "|".join(pair)))
            tasks.setdefault(task_id, (pid, other, decision, reasons))
        todo.reviews.clear()
        w.prefetch([("Task", t) for t in sorted(tasks)])
        for task_id, (pid, other, decision, reasons) in tasks.items():
            if w.current_body("Task", task_id) is None:
                w.put_internal(review_task(task_id, pid, other, decision, reasons, w.now))

    # --- decisions by a data steward ---------------------------------------------------------

    def link(self, w: IndexWriter, source: str, target: str, who: str, why: str) -> str:
        """A person decided ``source`` and ``target`` are one citizen: ``source`` joins the
        Person of ``target`` (both at ``level4``), and automatic matching never parts them.
        Returns the Person id. Also the call for HL7 ADT^A40 merges and SATUSEHAT/BPJS
        identity confirmations (docs/mpi.md)."""
        if source == target:
            raise FhirError.single(400, "invalid", "A record cannot be linked to itself")
        got = self._memberships_of(w, [source, target])
        todo = _Flush()
        person = got[target].person_id
        store.decide(w.conn, source, target, True, who, w.now)
        self._move(w, source, got[source], person, LEVEL4, why, 1.0, who, todo)
        self._move(w, target, got[target], person, LEVEL4, why, 1.0, who, todo)
        self._close_review(w, source, target, "same person", who)
        self._finish(w, todo)
        return person

    def unlink(self, w: IndexWriter, source: str, who: str, why: str) -> str:
        """A person decided ``source`` is not the citizen of the other records of its Person:
        it leaves for a new Person of its own (``level4``), and automatic matching never joins
        it with any of them again. Returns the new Person id."""
        got = self._memberships_of(w, [source])
        cur = got[source]
        todo = _Flush()
        others = [p for p in store.members(w.conn, cur.person_id) if p != source]
        if not others:
            raise FhirError.single(
                409, "business-rule", f"Patient/{source} is the only record of its Person"
            )
        for other in others:
            store.decide(w.conn, source, other, False, who, w.now)
            self._close_review(w, source, other, "different people", who)
        person = str(uuid.uuid4())
        todo.new_persons.add(person)
        self._move(w, source, cur, person, LEVEL4, why, None, who, todo)
        self._finish(w, todo)
        return person

    def _memberships_of(self, w: IndexWriter, ids: Sequence[str]) -> dict[str, Membership]:
        store.lock(w.conn, [f"patient:{i}" for i in ids])
        got = store.memberships(w.conn, ids)
        for i in ids:
            if i not in got:
                raise FhirError.single(404, "not-found", f"Patient/{i} is not known")
        return got

    def _close_review(self, w: IndexWriter, a: str, b: str, outcome: str, who: str) -> None:
        task_id = str(uuid.uuid5(_IDS, "mpi-review|" + "|".join(sorted((a, b)))))
        task = w.current_body("Task", task_id)
        if task is None or task.get("status") != "requested":
            return
        task = {k: v for k, v in task.items() if k != "meta"}
        task["status"] = "completed"
        task["lastModified"] = to_instant(w.now)
        task["owner"] = {"display": who}
        task["output"] = [
            {"type": {"text": "decision"}, "valueString": outcome},
        ]
        w.put_internal(task)


# --- $match ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    patient_id: str
    body: dict[str, Any]
    decision: Decision

    @property
    def grade(self) -> str:
        """The match-grade extension's code."""
        if self.decision.band == LINK:
            return "certain"
        if self.decision.band == REVIEW:
            return "probable"
        return "possible"


def match(
    conn: Connection, patient: dict[str, Any], *, count: int | None, only_certain: bool
) -> list[Match]:
    """Stored Patients that may be the citizen of ``patient``, best first; creates nothing.
    Pairs a rule forbids (``certainly-not``) and scores below 1% are left out."""
    f = extract(patient)
    found = store.candidates(conn, {k: cap_of(k) for k in blocking_keys(f)})
    model = load_model(conn)
    out = []
    for pid, (at, stored) in found.items():
        body = _as_dict(stored)
        theirs = _FEATURES.get((pid, at)) or _remember(pid, at, extract(body))
        d = decide(model, f, theirs)
        if d.band == NO_LINK and (d.reasons or d.probability < 0.01):
            continue
        if only_certain and d.band != LINK:
            continue
        out.append(Match(pid, body, d))
    out.sort(key=lambda m: (-m.decision.probability, m.patient_id))
    return out[:count] if count is not None else out


_FEATURES: dict[tuple[str, int], Features] = {}  # (id, lastUpdated) -> features, bounded
_FEATURES_KEPT = 50_000


def _stored_features(
    conn: Connection, stamps: dict[str, int], kept: dict[str, str]
) -> dict[str, Features]:
    """Stored records' features (``stamps``: id -> lastUpdated), extracted once per version:
    candidates come back often. Those this process has not seen at their version are decoded
    from the features the index stored (``kept``: from the block read), else their bodies
    are read and taken apart."""
    out: dict[str, Features] = {}
    unseen = []
    for pid, at in stamps.items():
        known = _FEATURES.get((pid, at))
        if known is None and pid in kept:
            known = decode(kept[pid])
            if known is not None:
                _remember(pid, at, known)
        if known is None:
            unseen.append(pid)
        else:
            out[pid] = known
    if not unseen:
        return out
    for pid, (at, body) in store.patient_versions(conn, unseen).items():
        out[pid] = _remember(pid, at, extract(_as_dict(body)))
    return out


def _remember(pid: str, at: int, features: Features) -> Features:
    if len(_FEATURES) >= _FEATURES_KEPT:
        _FEATURES.clear()
    _FEATURES[(pid, at)] = features
    return features


def names_a_citizen(key: str) -> bool:
    """Whether a blocking key is an identifier's (IDENTIFIER_KEYS)."""
    return key.split(":", 1)[0] in IDENTIFIER_KEYS


def cap_of(key: str) -> int:
    return MAX_BLOCK if names_a_citizen(key) else WEAK_BLOCK


# --- resources the index writes ---------------------------------------------------------------


def person_body(
    person_id: str, linked: dict[str, str], bodies: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A Person from its records, by the survivorship rules of docs/mpi.md: identity (NIK and
    the other national identifiers, name, sex, birth date) from the most trusted source
    (SATUSEHAT, BPJS, RSUD, Puskesmas, others), the latest record breaking a tie; telecom and
    address from the most recently updated record that has them."""
    if len(bodies) > 1:
        by_trust = sorted(bodies.values(), key=lambda b: (_rank(b), _neg_updated(b), b["id"]))
        by_time = sorted(bodies.values(), key=lambda b: (_neg_updated(b), b["id"]))
    else:  # most Persons: nothing to order
        by_trust = by_time = list(bodies.values())
    person: dict[str, Any] = {
        "resourceType": "Person",
        "id": person_id,
        "meta": {"source": INDEX_SOURCE},
    }
    identifiers: dict[str, dict[str, Any]] = {}
    for body in by_trust:
        for ident in body.get("identifier") or []:
            system = ident.get("system") if isinstance(ident, dict) else None
            if isinstance(system, str) and "/sid/mrn/" not in system and ident.get("value"):
                identifiers.setdefault(system, {"system": system, "value": ident["value"]})
    if identifiers:
        person["identifier"] = [identifiers[s] for s in sorted(identifiers)]
    for key in IDENTITY:
        value = next((b[key] for b in by_trust if b.get(key)), None)
        if value is not None:
            person[key] = value
    for key in CONTACT:
        value = next((b[key] for b in by_time if b.get(key)), None)
        if value is not None:
            person[key] = value
    person["active"] = True
    person["link"] = [
        {"target": {"reference": f"Patient/{pid}"}, "assurance": linked[pid]}
        for pid in sorted(linked)
    ]
    return person


def _person_rows(person: dict[str, Any], records: dict[str, dict[str, Any]], todo: _Flush) -> Any:
    """The Person's search index rows, its demographics' taken from the rows its record's write
    made when all of them are that record's (most Persons: one record); else None (the Writer
    extracts them)."""
    for pid, record in records.items():
        rows = todo.rows.get(pid)
        if rows is not None and all(person.get(k) is record.get(k) for k in DEMOGRAPHICS):
            return index_rows_borrowing(person, "Patient", rows, DEMOGRAPHICS)
    return None


def review_task(
    task_id: str,
    pid: str,
    other: str | None,
    decision: Decision | None,
    reasons: Sequence[str],
    now: int,
) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = [
        {"type": {"text": "record"}, "valueReference": {"reference": f"Patient/{p}"}}
        for p in (pid, other)
        if p
    ]
    if decision is not None:
        inputs.append({"type": {"text": "probability"}, "valueDecimal": _dec(decision.probability)})
        inputs.append({"type": {"text": "weight"}, "valueDecimal": _dec(decision.weight)})
        inputs += [
            {"type": {"text": f"weight:{name}"}, "valueDecimal": _dec(bits)}
            for name, bits in sorted(decision.breakdown.items())
        ]
        reasons = [*reasons, *decision.reasons]
    inputs += [{"type": {"text": "reason"}, "valueString": r} for r in reasons]
    return {
        "resourceType": "Task",
        "id": task_id,
        "meta": {"source": INDEX_SOURCE},
        "status": "requested",
        "intent": "proposal",
        "priority": "routine",
        "code": {
            "coding": [{"system": TASK_CODE_SYSTEM, "code": REVIEW_CODE}],
            "text": "Tinjau kemungkinan rekam medis ganda",
        },
        "description": "Possible match: are these records one person?",
        "focus": {"reference": f"Patient/{pid}"},
        "authoredOn": to_instant(now),
        "lastModified": to_instant(now),
        "input": inputs,
    }


def _provenance(
    who: str, changes: list[_Change], versions: dict[str, int], now: int
) -> dict[str, Any]:
    """One Provenance for the link changes of one unit of work by one agent: ``target`` the
    Persons' new versions, one ``entity`` per change (the Patient, with the Person, the change,
    the score and the reason in the ``mpi-link-change`` extension)."""
    persons = sorted({c.person_id for c in changes})
    entities = []
    for c in changes:
        detail: list[dict[str, Any]] = [
            {"url": "person", "valueReference": {"reference": f"Person/{c.person_id}"}},
            {"url": "change", "valueCode": c.action},
            {"url": "reason", "valueString": c.why},
        ]
        if c.probability is not None:
            detail.append({"url": "probability", "valueDecimal": _dec(c.probability)})
        entities.append(
            {
                "extension": [{"url": LINK_CHANGE_EXTENSION, "extension": detail}],
                "role": "source",
                "what": {"reference": f"Patient/{c.patient_id}"},
            }
        )
    reasons = sorted({c.why for c in changes})
    return {
        "resourceType": "Provenance",
        "id": str(uuid.uuid4()),
        "meta": {"source": INDEX_SOURCE},
        "target": [
            {
                "reference": f"Person/{p}/_history/{versions[p]}"
                if versions.get(p)
                else f"Person/{p}"
            }
            for p in persons
        ],
        "recorded": to_instant(now),
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "UPDATE",
                }
            ],
            "text": "patient index: records linked to or unlinked from persons",
        },
        "reason": [{"text": r} for r in reasons],
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "provenance-participant-type",
                            "code": "assembler" if who == INDEX_AGENT else "verifier",
                        }
                    ]
                },
                "who": {"display": who},
            }
        ],
        "entity": entities,
    }


def _rank(body: dict[str, Any]) -> int:
    source = str((body.get("meta") or {}).get("source") or "")
    for i, name in enumerate(_SOURCE_RANK):
        if f"/source/{name}/" in source or source.endswith(f"/source/{name}"):
            return i
    return len(_SOURCE_RANK)


def _neg_updated(body: dict[str, Any]) -> str:
    # ISO instants of one zone order as text; inverted so that the latest sorts first
    updated = str((body.get("meta") or {}).get("lastUpdated") or "")
    return "".join(chr(0x10FFFF - ord(c)) for c in updated)


def _dec(x: float) -> float:
    return float(f"{x:.6g}")


def _body_of(write: Write) -> dict[str, Any]:
    """A written version's body: the Writer's own dict, else its stored text parsed."""
    if write.body is not None:
        return write.body
    assert write.content is not None
    return _as_dict(write.content)


def _as_dict(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else loads(body)


# --- rebuild ---------------------------------------------------------------------------------


@dataclass
class RebuildReport:
    records: int = 0
    moved: int = 0
    removed: int = 0
    resumed: bool = False


STATISTICS_EVERY = 25_000  # records a rebuild places between two looks at mpi_records


def rebuild(
    engine: Engine,
    *,
    retrain: bool = True,
    batch: int = 250,  # records a transaction places; with about 3,000 blocking keys, more
    # than store.MAX_KEY_LOCKS, a batch locks the whole index (live writers wait for it): as
    # fast as 500 (20,000 records: 27.9, 31.0 s against 29.3, 30.7 s) for half the wait
    progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """Place every record again: estimate the model from the store's records (no labels),
    rebuild the blocking keys, then re-match the records in batches, each batch its own
    transaction with its progress stored, so an interrupted rebuild resumes where it stopped.
    Decisions by people stay as they are. Every moment, each Patient has exactly one Person.

    Records are placed in the order of their birth dates (:func:`placing_order`): the records
    of one citizen mostly share one, so they meet in one batch and their Person is written
    once, not made by the first record and rewritten for the second in a later batch (a
    tenth fewer Person versions at 200,000 records, 11 % less time placing them). Records
    stored since the rebuild read them were placed by the write path, as any write."""
    with engine.begin() as conn:
        state = store.get_state(conn, "rebuild")
    features: dict[str, Features] = {}  # kept for the placing: every record's features
    stamps: dict[str, int] = {}  # and the versions they were taken from
    # Millions of objects, none in a cycle, kept to the end: the cycle collector would walk
    # them again in every full collection (27 s of a 281 s rebuild of 200,000 records).
    with collector_paused():
        with engine.connect() as conn:
            for pid, at, body in store.all_patient_versions(conn):
                features[pid] = extract(_as_dict(body))
                stamps[pid] = at
        if state is None:
            _new_keys_and_model(engine, features, retrain)
            store.refresh_statistics(engine)
    with collector_frozen():  # and out of its sight while the records are placed
        return _place_all(engine, features, stamps, state, batch, progress)


def _place_all(
    engine: Engine,
    features: dict[str, Features],
    stamps: dict[str, int],
    state: str | None,
    batch: int,
    progress: Callable[[int, int], None] | None,
) -> RebuildReport:
    """:func:`rebuild`'s placing, in batches, from where ``state`` says an earlier one
    stopped (None: from the first record)."""
    index = PatientIndex()
    report = RebuildReport()
    cursor: tuple[str, str] | None = None
    if state is not None:
        after = json.loads(state)["after"]
        # a rebuild of an older version stored a record id: it starts placing again
        cursor = (after[0], after[1]) if isinstance(after, list) and len(after) == 2 else None
        report.resumed = True
    order = placing_order(features)
    start = bisect.bisect_right(order, cursor) if cursor is not None else 0
    total, done = len(order), start
    unseen = 0  # records placed since the planner last looked at mpi_records
    for first in range(start, total, batch):
        keys = order[first : first + batch]
        ids = [pid for _, pid in keys]
        with engine.begin() as conn:
            w = _writer(conn, index)
            report.moved += index.rematch(w, ids, known=features, stamps=stamps)
            w.flush()
            store.set_state(conn, "rebuild", json.dumps({"after": list(keys[-1])}))
        done += len(ids)
        report.records += len(ids)
        unseen += len(ids)
        if unseen >= STATISTICS_EVERY:  # the Persons' records grow: let the planner know
            store.refresh_statistics(engine, ("mpi_records",))
            unseen = 0
        if progress is not None:
            progress(done, total)
    with engine.begin() as conn:
        orphans = store.orphan_records(conn)
        if orphans:
            w = _writer(conn, index)
            index._process(w, {}, orphans, changed=True)
            w.flush()
        report.removed = len(orphans)
        store.drop_state(conn, "rebuild")
    return report


def placing_order(features: dict[str, Features]) -> list[tuple[str, str]]:
    """The records as a rebuild places them: (birth date or "", Patient id), ascending. A
    stored cursor of this form says where an interrupted rebuild goes on."""
    return sorted(
        (f.birth_date.isoformat() if f.birth_date else "", pid) for pid, f in features.items()
    )


def _new_keys_and_model(engine: Engine, features: dict[str, Features], retrain: bool) -> None:
    """Replace every blocking key and (``retrain``) the model. The keys are written on their
    own connection while this thread estimates the model: the one is mostly the database's
    work, the other Python's. Nothing is marked begun until both are stored (an interruption
    starts the rebuild again from the beginning)."""
    keys = {pid: blocking_keys(f) for pid, f in features.items()}  # once: stored and trained on
    rows = [(k, pid) for pid, ks in keys.items() for k in sorted(ks)]

    def write_keys() -> None:
        with engine.begin() as conn:
            store.clear_blocks(conn)
            store.insert_blocks(conn, rows)

    with ThreadPoolExecutor(1, thread_name_prefix="mpi-keys") as pool:
        written = pool.submit(write_keys)
        trainable = retrain and len(features) >= 2
        model = train(list(features.values()), keys=list(keys.values())) if trainable else None
        written.result()
    with engine.begin() as conn:
        if model is not None:
            save_model(conn, model)
        store.set_state(conn, "rebuild", json.dumps({"after": ""}))


def _writer(conn: Connection, index: PatientIndex) -> IndexWriter:
    from fhirhub.services.writes import Writer  # the Writer calls this module: imported late
    from fhirhub.storage.repository import ResourceRepository

    return Writer(ResourceRepository(conn), patient_index=index)
