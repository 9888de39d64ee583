"""refresh tokens: a partial index on the session's token that still holds a sealed successor

Revision ID: 0007_refresh_sealed_index
Revises: 0006_security_events
Create Date: 2026-12-02 16:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_refresh_sealed_index'
down_revision = '0006_security_events'
branch_labels = None
depends_on = None

_SEALED = sa.text('successor_sealed IS NOT NULL')


def upgrade():
    op.create_index('ix_refresh_tokens_sealed', 'refresh_tokens', ['session_id'],
                    unique=False, sqlite_where=_SEALED, postgresql_where=_SEALED)


def downgrade():
    op.drop_index('ix_refresh_tokens_sealed', table_name='refresh_tokens')
