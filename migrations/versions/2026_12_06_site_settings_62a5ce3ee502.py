"""Site settings: values admins change on a page (the email schedule), over the configuration.

Revision ID: 62a5ce3ee502
Revises: 54b1add0aec6
Create Date: 2026-12-06 04:42:33.689211

Only adds a table; with no row, a setting keeps its configured value.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "62a5ce3ee502"
down_revision = "54b1add0aec6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_site_settings")),
    )


def downgrade() -> None:
    op.drop_table("site_settings")
