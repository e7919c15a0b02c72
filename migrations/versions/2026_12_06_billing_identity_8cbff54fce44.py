"""Billing: webhook events ignored on purpose keep their reason; the Checkout Sessions opened
for members are recorded.

Revision ID: 8cbff54fce44
Revises: 77ca07dbf5a3
Create Date: 2026-12-06 10:00:00.000000

Only adds: a column with a literal default (in place on SQLite too) and a table. Events
recorded before keep an empty reason; those skipped as another integration's said so in
``error``, which is moved to the new column. Sessions opened before are not known: they expire
within a day, and completing one is still recorded through its customer.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "8cbff54fce44"
down_revision = "77ca07dbf5a3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkout_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("stripe_checkout_session_id", sa.Text(), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=False),
        sa.Column("attempt", sa.String(length=64), nullable=False),
        sa.Column(
            "mode",
            sa.Enum(
                "subscription",
                "payment",
                name="checkout_mode",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "complete",
                "expired",
                name="checkout_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_checkout_sessions_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_sessions")),
        sa.UniqueConstraint(
            "stripe_checkout_session_id",
            name=op.f("uq_checkout_sessions_stripe_checkout_session_id"),
        ),
    )
    op.create_index(
        op.f("ix_checkout_sessions_member_id"), "checkout_sessions", ["member_id"], unique=False
    )
    op.add_column(
        "stripe_events",
        sa.Column("ignored_reason", sa.String(length=500), server_default="", nullable=False),
    )
    op.execute(
        "UPDATE stripe_events SET ignored_reason = substr(error, 10), error = '' "
        "WHERE error LIKE 'skipped: %'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE stripe_events SET error = 'skipped: ' || ignored_reason WHERE ignored_reason <> ''"
    )
    op.drop_column("stripe_events", "ignored_reason")
    op.drop_index(op.f("ix_checkout_sessions_member_id"), table_name="checkout_sessions")
    op.drop_table("checkout_sessions")
