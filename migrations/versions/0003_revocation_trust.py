"""revocation trust: the database's word on whether the Redis denylist is complete

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 07:00:00

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('revocation_trust',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('trusted', sa.Boolean(), nullable=False),
    sa.Column('epoch', sa.String(length=64), nullable=True),
    sa.Column('identity', sa.String(length=128), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_revocation_trust'))
    )
    # No row yet: the first check finds none, treats Redis as untrusted and rebuilds it.


def downgrade():
    op.drop_table('revocation_trust')
