"""AuditEvent's ``patient`` search parameter is an alias: the Patient rows of ``agent`` and
``entity``

``AuditEvent.patient`` is ``agent.who.where(resolve() is Patient) | entity.what.where(resolve()
is Patient)``: exactly the Patient-target rows of the ``agent`` and ``entity`` parameters, which
every AuditEvent already has. Search now reads those (``registry.stored_as``), and new events
write no ``patient`` rows (a read's audit cost one index row less); the old ones are removed.
The downgrade writes them back from the rows they duplicate.

Revision ID: 0115
Revises: 0114
Create Date: 2026-12-06 18:00:00
"""
from alembic import op


revision = '0115'
down_revision = '0114'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM search_reference WHERE res_type = 'AuditEvent' AND param = 'patient'"
    )


def downgrade() -> None:
    op.execute(
        "INSERT INTO search_reference (resource_pk, res_type, param, target_type, target_id, url) "
        "SELECT DISTINCT resource_pk, res_type, 'patient', target_type, target_id, url "
        "FROM search_reference WHERE res_type = 'AuditEvent' AND param IN ('agent', 'entity') "
        "AND target_type = 'Patient'"
    )
