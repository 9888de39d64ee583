"""security events: SETs for receivers (RFC 8417) and their acknowledgements (RFC 8936)

Revision ID: 0006_security_events
Revises: 0005_passkeys
Create Date: 2026-12-02 11:05:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_security_events'
down_revision = '0005_passkeys'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'security_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uid', sa.String(length=32), nullable=False),
        sa.Column('event_type', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('value', sa.String(length=128), nullable=False),
        sa.Column('not_before', sa.DateTime(), nullable=True),
        sa.Column('reason', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('uid'),
    )
    op.create_index('ix_security_events_expires_at', 'security_events', ['expires_at'])
    op.create_table(
        'security_event_acks',
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('acked_at', sa.DateTime(), nullable=False),
        sa.Column('error', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['client_id'], ['service_clients.client_id'],
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['event_id'], ['security_events.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('client_id', 'event_id'),
    )
    op.create_index('ix_security_event_acks_event', 'security_event_acks', ['event_id'])
    op.create_table(
        'security_event_cursors',
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('acked_through', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['client_id'], ['service_clients.client_id'],
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('client_id'),
    )


def downgrade():
    op.drop_table('security_event_cursors')
    op.drop_index('ix_security_event_acks_event', table_name='security_event_acks')
    op.drop_table('security_event_acks')
    op.drop_index('ix_security_events_expires_at', table_name='security_events')
    op.drop_table('security_events')
