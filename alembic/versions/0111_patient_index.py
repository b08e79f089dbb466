"""the patient index: records, blocking keys, decisions and state (fhirhub/storage/mpi_models.py)

Revision ID: 0111
Revises: 0110
Create Date: 2026-12-06 10:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0111'
down_revision = '0110'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'mpi_records',
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('person_id', sa.String(length=64), nullable=False),
        sa.Column('assurance', sa.String(length=8), nullable=False),
        sa.Column('updated', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_mpi_records')),
    )
    op.create_index('ix_mpi_records_person_id', 'mpi_records', ['person_id'], unique=False)
    op.create_table(
        'mpi_blocks',
        sa.Column('key', sa.String(length=160), nullable=False),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('key', 'patient_id', name=op.f('pk_mpi_blocks')),
    )
    op.create_index('ix_mpi_blocks_patient_id', 'mpi_blocks', ['patient_id'], unique=False)
    op.create_table(
        'mpi_decisions',
        sa.Column('patient_a', sa.String(length=64), nullable=False),
        sa.Column('patient_b', sa.String(length=64), nullable=False),
        sa.Column('same', sa.Boolean(), nullable=False),
        sa.Column('who', sa.String(length=200), nullable=False),
        sa.Column('decided', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('patient_a', 'patient_b', name=op.f('pk_mpi_decisions')),
    )
    op.create_index('ix_mpi_decisions_patient_b', 'mpi_decisions', ['patient_b'], unique=False)
    op.create_table(
        'mpi_state',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_mpi_state')),
    )


def downgrade() -> None:
    op.drop_table('mpi_state')
    op.drop_index('ix_mpi_decisions_patient_b', table_name='mpi_decisions')
    op.drop_table('mpi_decisions')
    op.drop_index('ix_mpi_blocks_patient_id', table_name='mpi_blocks')
    op.drop_table('mpi_blocks')
    op.drop_index('ix_mpi_records_person_id', table_name='mpi_records')
    op.drop_table('mpi_records')
