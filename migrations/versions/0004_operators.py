"""operators: temporary passwords, service client scopes and secret rotation

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:20:00

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('service_clients', schema=None) as batch_op:
        # Clients registered before scopes keep what they could do: both endpoints.
        batch_op.add_column(sa.Column('scopes', sa.JSON(), nullable=False,
                                      server_default='["introspect", "revoke"]'))
        batch_op.add_column(sa.Column('previous_secret_hash', sa.String(length=255),
                                      nullable=True))
        batch_op.add_column(sa.Column('previous_secret_expires_at',
                                      sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('secret_rotated_at', sa.DateTime(),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table('service_clients', schema=None) as batch_op:
        batch_op.drop_column('secret_rotated_at')
        batch_op.drop_column('previous_secret_expires_at')
        batch_op.drop_column('previous_secret_hash')
        batch_op.drop_column('scopes')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('must_change_password')
