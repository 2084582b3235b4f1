"""audit verifications

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("intact", sa.Boolean(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("anchors_checked", sa.Integer(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("ran_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_verifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_verifications_ran_at"), ["ran_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_verifications_ran_at"))
    op.drop_table("audit_verifications")
