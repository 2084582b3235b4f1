"""datasets: their catalogue entry (title, description, keywords, publisher, period, update
cycle, licence, data dictionary)

Revision ID: 0007
Revises: 0006

Earlier datasets have none: they stay published, and appear in the catalogue with the
fields they lack empty until an administrator or steward describes them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("catalogue", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("catalogue")
