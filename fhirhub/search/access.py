"""What one client may read, as a condition inside the search SQL (issue 13).

A ``facility`` client (a Puskesmas, the RSUD) reads only the records its facility is connected
to. The rule (docs/auth.md, "What a facility reads"):

- **its own records**: those that name its Organization in a reference the index holds
  (``serviceProvider``, ``managingOrganization``, ``performer``, ``organization``,
  ``custodian``, ``requester``, a Provenance's ``agent``, ...) or whose ``meta.source`` is one
  of its source URIs (what it wrote through fhirhub, which stamps them);
- **its Patients**: the Patient resources among its own records;
- **its Patients' records**: any other record that refers to one of its Patients (an Encounter,
  an Observation, a Coverage, ... written by anyone: the care record of the people it cares
  for). Another facility's Patient is not its Patient because one of its own records refers
  to it: only the Patient resource itself can be its own;
- the **directory** (Organization, Location, Practitioner, ...): everyone's.

:class:`Access` turns that rule into ``pk IN (...)`` conditions on the current index rows, so
that it holds inside every statement a search runs: its matches, its count, its ``_include``
and ``_revinclude``, its chains and ``_has`` (nested searches of other types), history and
``$everything``. A record that is not current (deleted) has no index rows, so only its current
version is judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, false, or_, select, union_all

from fhirhub.errors import FhirError, Issue
from fhirhub.search.tables import resources, search_reference, search_uri

SOURCE_PARAM = "_source"


@dataclass(frozen=True)
class Access:
    """The records one facility may read: see the module docstring."""

    organization: str | None  # "Organization/<id>"; None: the client reaches no record
    sources: tuple[str, ...] = ()  # its meta.source URIs
    open_types: frozenset[str] = field(default_factory=frozenset)  # readable by everyone

    @property
    def org_id(self) -> str | None:
        if self.organization is None:
            return None
        kind, _, oid = self.organization.partition("/")
        return oid if kind == "Organization" and oid else None

    # --- the pieces ---------------------------------------------------------------------

    def own(self, res_type: str | None = None) -> Any:
        """SELECT resource_pk of its own records (of ``res_type``); None when it has none."""
        if self.org_id is None:
            return None
        # aliases: never correlated with an index table the enclosing statement reads
        ref, uri = search_reference.alias("access_org"), search_uri.alias("access_src")
        named = select(ref.c.resource_pk.label("resource_pk")).where(
            ref.c.target_type == "Organization", ref.c.target_id == self.org_id
        )
        if res_type is not None:
            named = named.where(ref.c.res_type == res_type)
        if not self.sources:
            return named
        stamped = select(uri.c.resource_pk.label("resource_pk")).where(
            uri.c.param == SOURCE_PARAM, uri.c.value.in_(list(self.sources))
        )
        if res_type is not None:
            stamped = stamped.where(uri.c.res_type == res_type)
        return union_all(named, stamped)

    def patient_ids(self) -> Select[Any] | None:
        """SELECT res_id of its Patients."""
        own = self.own("Patient")
        if own is None:
            return None
        p = resources.alias("access_patient")
        return select(p.c.res_id).where(p.c.res_type == "Patient", p.c.pk.in_(own))

    def patients_records(self, res_type: str | None = None) -> Select[Any] | None:
        """SELECT resource_pk of the records (not Patients) that refer to one of its Patients."""
        ids = self.patient_ids()
        if ids is None:
            return None
        ref = search_reference.alias("access_ref")
        q = select(ref.c.resource_pk).where(
            ref.c.target_type == "Patient", ref.c.target_id.in_(ids), ref.c.res_type != "Patient"
        )
        return q.where(ref.c.res_type == res_type) if res_type is not None else q

    # --- conditions ---------------------------------------------------------------------

    def clause(self, res_type: str | None, pk_col: Any) -> ColumnElement[bool] | None:
        """The condition on ``pk_col`` (a resources.pk) for records of ``res_type`` (None: of
        any type); None when every record of the type may be read."""
        if res_type is not None and res_type in self.open_types:
            return None
        own = self.own(res_type)
        if own is None:
            return false() if res_type is not None else self._open(pk_col)
        alternatives: list[ColumnElement[bool]] = [pk_col.in_(own)]
        if res_type != "Patient":
            records = self.patients_records(res_type)
            assert records is not None
            alternatives.append(pk_col.in_(records))
        if res_type is None:
            alternatives.append(self._open(pk_col))
        return or_(*alternatives)

    def _open(self, pk_col: Any) -> ColumnElement[bool]:
        if not self.open_types:
            return false()
        r = resources.alias("access_open")
        return pk_col.in_(select(r.c.pk).where(r.c.res_type.in_(sorted(self.open_types))))

    def where(self, res_type: str | None, pk_col: Any) -> list[ColumnElement[bool]]:
        """:meth:`clause` as a list of criteria (empty when nothing is filtered)."""
        c = self.clause(res_type, pk_col)
        return [] if c is None else [c]

    # --- one record ---------------------------------------------------------------------

    def reaches(self, conn: Any, res_type: str, res_id: str) -> bool:
        """Whether the current ``res_type/res_id`` is one the client may read: probes of its
        own index rows (and of the Patients it refers to), not the facility's whole set."""
        if res_type in self.open_types:
            return True
        r = resources
        q = select(r.c.pk).where(r.c.res_type == res_type, r.c.res_id == res_id)
        pk = conn.execute(q.limit(1)).scalar()
        if pk is None or self.org_id is None:
            return False
        if self._owned(conn, [pk]):
            return True
        if res_type == "Patient":
            return False
        ref, p = search_reference.alias("access_ref"), resources.alias("access_patient")
        patients = (
            select(p.c.pk)
            .join(ref, (p.c.res_type == "Patient") & (p.c.res_id == ref.c.target_id))
            .where(ref.c.resource_pk == pk, ref.c.target_type == "Patient")
        )
        return self._owned(conn, [int(x) for x in conn.execute(patients).scalars()])

    def _owned(self, conn: Any, pks: list[int]) -> bool:
        """Whether one of ``pks`` is one of its own records (by their own index rows)."""
        if not pks:
            return False
        ref = search_reference.alias("access_org")
        named = select(ref.c.resource_pk).where(
            ref.c.resource_pk.in_(pks),
            ref.c.target_type == "Organization",
            ref.c.target_id == self.org_id,
        )
        if conn.execute(named.limit(1)).first() is not None:
            return True
        if not self.sources:
            return False
        uri = search_uri.alias("access_src")
        stamped = select(uri.c.resource_pk).where(
            uri.c.resource_pk.in_(pks),
            uri.c.param == SOURCE_PARAM,
            uri.c.value.in_(list(self.sources)),
        )
        return conn.execute(stamped.limit(1)).first() is not None

    def owns(self, conn: Any, res_type: str, res_id: str) -> bool:
        """Whether the current ``res_type/res_id`` is one of its own records."""
        r = resources
        q = select(r.c.pk).where(r.c.res_type == res_type, r.c.res_id == res_id)
        pk = conn.execute(q.limit(1)).scalar()
        return pk is not None and self.org_id is not None and self._owned(conn, [pk])


def forbidden(text: str) -> FhirError:
    """403 for a record the client may not reach (its token is good; its organisation is not)."""
    return FhirError(
        403,
        [Issue("forbidden", text)],
        {"WWW-Authenticate": 'Bearer realm="fhirhub", error="insufficient_scope"'},
    )


__all__ = ["Access", "forbidden"]
