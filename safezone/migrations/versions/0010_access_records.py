"""access records (접속기록): a hash chain of every access, and its head

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(400), nullable=False),
        sa.Column("target", sa.String(1024), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("seq"),
    )
    op.create_index("ix_access_records_ts", "access_records", ["ts"])
    op.create_index("ix_access_records_account", "access_records", ["account"])
    op.create_index("ix_access_records_action", "access_records", ["action"])
    op.create_table(
        "access_records_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("base_seq", sa.Integer(), nullable=False),
        sa.Column("base_hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("access_records_head")
    op.drop_index("ix_access_records_action", table_name="access_records")
    op.drop_index("ix_access_records_account", table_name="access_records")
    op.drop_index("ix_access_records_ts", table_name="access_records")
    op.drop_table("access_records")
