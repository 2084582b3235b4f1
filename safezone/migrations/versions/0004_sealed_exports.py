"""sealed exports: frozen versions, release forms, stored previews, released indexes,
page logouts, check claims; memberships remember an approval

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FILE_COLUMNS = (
    ("frozen_version", 100), ("kind", 20), ("release_form_key", 700),
    ("release_sha256", 64), ("preview_key", 700),
)


def upgrade() -> None:
    with op.batch_alter_table("export_requests") as batch:
        batch.add_column(sa.Column("checks_claimed_at", sa.DateTime(timezone=True),
                                   nullable=True))
    with op.batch_alter_table("export_files") as batch:
        for name, length in FILE_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(sa.Column("ever_approved", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.execute("UPDATE memberships SET ever_approved = (status IN ('approved', 'expired', "
               "'revoked'))")
    op.create_table(
        "released_indexes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("index", sa.JSON(), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.ForeignKeyConstraint(["request_id"], ["export_requests.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_released_indexes_project_id", "released_indexes", ["project_id"])
    op.create_index("ix_released_indexes_request_id", "released_indexes", ["request_id"])
    op.create_table(
        "page_logouts",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )


def downgrade() -> None:
    op.drop_table("page_logouts")
    op.drop_index("ix_released_indexes_request_id", table_name="released_indexes")
    op.drop_index("ix_released_indexes_project_id", table_name="released_indexes")
    op.drop_table("released_indexes")
    with op.batch_alter_table("memberships") as batch:
        batch.drop_column("ever_approved")
    with op.batch_alter_table("export_files") as batch:
        for name, _ in FILE_COLUMNS:
            batch.drop_column(name)
    with op.batch_alter_table("export_requests") as batch:
        batch.drop_column("checks_claimed_at")
