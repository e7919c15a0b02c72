"""Embeds: the sites allowed to frame them and to read the public API from a browser.

Revision ID: 90b11cf82b76
Revises: 16c5d845186a
Create Date: 2026-12-06 04:46:20.246936

Only adds a table. Origins are stored cleaned (``https://news.example``), once each.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "90b11cf82b76"
down_revision = "16c5d845186a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embed_origins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "origin LIKE 'https://%' OR origin LIKE 'http://%'",
            name=op.f("ck_embed_origins_origin_scheme"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embed_origins")),
        sa.UniqueConstraint("origin", name=op.f("uq_embed_origins_origin")),
    )


def downgrade() -> None:
    op.drop_table("embed_origins")
