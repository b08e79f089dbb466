"""The patient index keeps each record's matching features beside its Person

``mpi_records.features`` (the record's features as ``fhirhub.mpi.features.encode`` writes them)
and ``features_at`` (the lastUpdated of the Patient version they were taken from). The block
read returns them, so a candidate is compared without its body read, parsed and taken apart
again in every process that meets it. Existing rows get NULL: their bodies are read as before
until the record's next write or ``fhirhub mpi rebuild``.

Revision ID: 0116
Revises: 0115
Create Date: 2026-12-07 09:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0116'
down_revision = '0115'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mpi_records') as batch:
        batch.add_column(sa.Column('features', sa.Text(), nullable=True))
        batch.add_column(sa.Column('features_at', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mpi_records') as batch:
        batch.drop_column('features_at')
        batch.drop_column('features')
