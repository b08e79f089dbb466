"""The patient index's own tables (docs/mpi.md).

``mpi_records`` holds one row per current Patient: the Person it belongs to, how that was
decided, and the record's features as the matcher compares them. Its primary key is the Patient
id, so the database itself keeps a Patient in at most one Person (field reports: one source
record linked to two golden records). ``mpi_blocks`` serves
candidate lookup: one row per (blocking key, Patient), so a record meets its candidates through an
index whatever the size of the city. ``mpi_decisions`` keeps what a person decided about a pair
("same" or "different"); automatic matching never goes against it. ``mpi_state`` keeps the
estimated model and the progress of a rebuild.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, Boolean, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from fhirhub.storage.models import Base


class MpiRecord(Base):
    __tablename__ = "mpi_records"
    __table_args__ = (Index("ix_mpi_records_person_id", "person_id"),)

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64))
    assurance: Mapped[str] = mapped_column(String(8))  # level3 automatic, level4 by a person
    updated: Mapped[int] = mapped_column(BigInteger)  # microseconds since the epoch, UTC
    # The record's matching features (fhirhub.mpi.features.encode) and the lastUpdated of the
    # Patient version they were taken from: a candidate is compared without reading its body
    # while the two agree. NULL until the record's next write or a rebuild.
    features: Mapped[str | None] = mapped_column(Text, nullable=True)
    features_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MpiBlock(Base):
    __tablename__ = "mpi_blocks"
    __table_args__ = (Index("ix_mpi_blocks_patient_id", "patient_id"),)

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class MpiDecision(Base):
    """A person's decision about two Patients (``patient_a`` < ``patient_b``)."""

    __tablename__ = "mpi_decisions"
    __table_args__ = (Index("ix_mpi_decisions_patient_b", "patient_b"),)

    patient_a: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_b: Mapped[str] = mapped_column(String(64), primary_key=True)
    same: Mapped[bool] = mapped_column(Boolean)
    who: Mapped[str] = mapped_column(String(200))
    decided: Mapped[int] = mapped_column(BigInteger)


class MpiState(Base):
    """Named values: ``model`` (the scoring model as JSON), ``rebuild`` (its progress)."""

    __tablename__ = "mpi_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


mpi_records = cast(Table, MpiRecord.__table__)
mpi_blocks = cast(Table, MpiBlock.__table__)
mpi_decisions = cast(Table, MpiDecision.__table__)
mpi_state = cast(Table, MpiState.__table__)
