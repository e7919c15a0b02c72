"""Offers: a personal offer to one member, reached by a signed single-use link.

Revision ID: 79a08b5663ff
Revises: 62a5ce3ee502
Create Date: 2026-12-06 04:45:16.022600

Only adds a table. An offer is for a tier or for a custom amount (with its currency), never both;
``token_hash`` is a keyed hash of the link's secret (the link itself is never stored).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "79a08b5663ff"
down_revision = "62a5ce3ee502"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("tier_id", sa.Integer(), nullable=True),
        sa.Column("amount", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column(
            "interval",
            sa.Enum(
                "month", "year", name="billing_interval", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("first_charge_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("link_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(amount IS NULL) = (currency IS NULL)", name=op.f("ck_offers_amount_has_currency")
        ),
        sa.CheckConstraint(
            "(tier_id IS NULL) <> (amount IS NULL)", name=op.f("ck_offers_tier_or_amount")
        ),
        sa.CheckConstraint("amount IS NULL OR amount > 0", name=op.f("ck_offers_amount_positive")),
        sa.CheckConstraint(
            "currency IS NULL OR (length(currency) = 3 AND currency = upper(currency))",
            name=op.f("ck_offers_currency_iso"),
        ),
        sa.CheckConstraint(
            "expires_at > created_at", name=op.f("ck_offers_expires_after_creation")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_offers_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_offers_subscription_id_subscriptions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tier_id"], ["tiers.id"], name=op.f("fk_offers_tier_id_tiers"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
    )
    op.create_index(op.f("ix_offers_member_id"), "offers", ["member_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_offers_member_id"), table_name="offers")
    op.drop_table("offers")
