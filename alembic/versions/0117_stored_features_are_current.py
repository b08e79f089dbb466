"""The patient index's stored features are always the current version's

A block read now takes ``mpi_records.features`` for the features of the record's current
version without looking the version up: every write that does not place the record (the index
turned off) drops them (``fhirhub.mpi.store.forget_features``). Features stored before, from a
version that is no longer current or of a Patient since deleted, are dropped here; those
records' bodies are read as before until their next write or ``fhirhub mpi rebuild``.

Revision ID: 0117
Revises: 0116
Create Date: 2026-12-07 18:50:00
"""
from alembic import op


revision = '0117'
down_revision = '0116'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE mpi_records SET features = NULL, features_at = NULL "
        "WHERE features IS NOT NULL AND NOT EXISTS (SELECT 1 FROM resources r "
        "WHERE r.res_type = 'Patient' AND r.res_id = mpi_records.patient_id "
        "AND NOT r.deleted AND r.last_updated = mpi_records.features_at)"
    )


def downgrade() -> None:
    pass  # the dropped features were stale; nothing to restore
