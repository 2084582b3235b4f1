"""applications for access (이용 신청): purpose, datasets, period, fellow analysts, the
research plan's object key and SHA-256, the pledge accepted, and the decision

Revision ID: 0008
Revises: 0007

The research plan's bytes live in MinIO (bucket ``applications``), never in this table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("applicant", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.Enum("submitted", "approved", "rejected", "withdrawn",
                                    name="applicationstatus", native_enum=False, length=20),
                  nullable=False, index=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("fellows", sa.JSON(), nullable=False),
        sa.Column("period_end", sa.String(10), nullable=False),
        sa.Column("project", sa.String(40), nullable=True),
        sa.Column("plan_key", sa.String(300), nullable=True),
        sa.Column("plan_name", sa.String(200), nullable=True),
        sa.Column("plan_size", sa.Integer(), nullable=True),
        sa.Column("plan_sha256", sa.String(64), nullable=True),
        sa.Column("pledge_version", sa.String(40), nullable=False),
        sa.Column("pledge_sha256", sa.String(64), nullable=False),
        sa.Column("pledge_language", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_project", sa.String(40), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("applications")
