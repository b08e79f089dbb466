"""pull watermarks: where each pull from a source database stopped

``fhirhub pull khanza`` reads a SIMRS Khanza database past its watermark and resumes from it.
One row per source and database (the sha256 of its URL without the password).

Revision ID: 0114
Revises: 0113
Create Date: 2026-12-06 10:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0114'
down_revision = '0113'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pull_watermarks',
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('target', sa.String(length=64), nullable=False),
        sa.Column('location', sa.String(length=512), nullable=False),
        sa.Column('position', sa.String(length=256), nullable=False),
        sa.Column('rows', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('source', 'target', name=op.f('pk_pull_watermarks')),
    )


def downgrade() -> None:
    op.drop_table('pull_watermarks')
