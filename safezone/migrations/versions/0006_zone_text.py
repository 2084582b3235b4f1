"""export requests: whether their text was written inside the zone (a notebook's token)

Revision ID: 0006
Revises: 0005

Who wrote the text of earlier requests was not recorded: they count as written inside, so
outside the zone only their reviewers read it until it is released.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("export_requests") as batch:
        batch.add_column(sa.Column("text_from_zone", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    requests = sa.table("export_requests", sa.column("text_from_zone", sa.Boolean()))
    op.execute(requests.update().values(text_from_zone=True))


def downgrade() -> None:
    with op.batch_alter_table("export_requests") as batch:
        batch.drop_column("text_from_zone")
