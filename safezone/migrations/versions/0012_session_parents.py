"""session grants hold temporary keys of a session parent (MinIO STS)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_grants") as batch:
        batch.add_column(sa.Column("parent", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session_grants") as batch:
        batch.drop_column("parent")
