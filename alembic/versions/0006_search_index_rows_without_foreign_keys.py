"""search index rows without a foreign key to resources

Every index row checked its foreign key on insert: a trigger, a lookup in ``pk_resources`` and
a row lock, about eight times per stored resource. The rows are written and replaced only by
the one write path, with the resource they belong to, and resources are never removed (a
delete is a new version), so the constraint guarded nothing that could happen. Without it the
PostgreSQL side of ingest with full indexing costs less (see bench/bench_ingest.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 00:10:00
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

TABLES = (
    "search_string",
    "search_token",
    "search_date",
    "search_number",
    "search_quantity",
    "search_reference",
    "search_uri",
    "search_composite",
)


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_resource_pk_resources", type_="foreignkey")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(
                f"fk_{table}_resource_pk_resources",
                "resources",
                ["resource_pk"],
                ["pk"],
                ondelete="CASCADE",
            )
