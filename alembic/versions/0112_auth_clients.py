"""registered OAuth clients and the replay cache of their assertions

``auth_clients``: one row per client (role, bound Organization and adapter, secret hash or
JWKS, scopes, active or revoked). ``auth_assertion_ids``: the ``jti`` of each accepted
``private_key_jwt`` assertion until it expires, shared by every server process.

Revision ID: 0112
Revises: 0111
Create Date: 2026-12-06 10:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0112'
down_revision = '0111'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'auth_clients',
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('organization', sa.String(length=128), nullable=True),
        sa.Column('adapter', sa.String(length=32), nullable=True),
        sa.Column('secret_hash', sa.String(length=256), nullable=True),
        sa.Column('jwks', sa.Text(), nullable=True),
        sa.Column('jwks_url', sa.String(length=512), nullable=True),
        sa.Column('scope', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('rotated_at', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('client_id', name=op.f('pk_auth_clients')),
    )
    op.create_table(
        'auth_assertion_ids',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_auth_assertion_ids')),
    )


def downgrade() -> None:
    op.drop_table('auth_assertion_ids')
    op.drop_table('auth_clients')
