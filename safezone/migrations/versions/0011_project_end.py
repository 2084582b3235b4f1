"""project end, retention and destruction: end dates, raw retention, certificates

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "destructions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(63), nullable=False, index=True),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(64), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("inventory", sa.JSON(), nullable=True),
        sa.Column("certificate", sa.JSON(), nullable=True),
        sa.Column("certificate_sha256", sa.String(64), nullable=True),
        sa.Column("certificate_key", sa.String(300), nullable=True),
        sa.UniqueConstraint("kind", "subject", "part"),
    )


def downgrade() -> None:
    op.drop_table("destructions")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("destroyed_at")
        batch.drop_column("retain_until")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("destroyed_at")
        batch.drop_column("ends_at")
