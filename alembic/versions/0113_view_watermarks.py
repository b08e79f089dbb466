"""materialised views keep a watermark

``fhirhub views materialize`` keeps each view as a table ``view_<name>`` and records here up
to which ``last_updated`` it is current and for which definition, so the next run reads only
the resources changed since.

Revision ID: 0113
Revises: 0112
Create Date: 2026-12-06 10:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0113'
down_revision = '0112'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'view_watermarks',
        sa.Column('view_name', sa.String(length=64), nullable=False),
        sa.Column('table_name', sa.String(length=64), nullable=False),
        sa.Column('definition_sha256', sa.String(length=64), nullable=False),
        sa.Column('last_updated', sa.BigInteger(), nullable=False),
        sa.Column('refreshed_at', sa.BigInteger(), nullable=False),
        sa.Column('row_count', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('view_name', name=op.f('pk_view_watermarks')),
    )


def downgrade() -> None:
    op.drop_table('view_watermarks')
