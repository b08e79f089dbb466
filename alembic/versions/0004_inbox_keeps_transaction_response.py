"""inbox keeps the transaction-response and the rejection's HTTP status

A Bundle posted to ``POST /fhir`` by a source with an adapter goes through the inbox; the same
Bundle sent again gets the answer of the first time, so the answer is kept with the message.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 23:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome_status', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('response', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.drop_column('response')
        batch_op.drop_column('outcome_status')
