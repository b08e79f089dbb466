"""inbox messages being processed hold a lease

A worker claims a message (``status = 'processing'``) with a guarded update and holds it until
``lease_until`` (microseconds since the epoch). A message left ``processing`` by a process that
died is handed out again once its lease has run out; one that a live worker holds is not.

Revision ID: 0110
Revises: 0006
Create Date: 2026-12-06 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0110'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_until', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
