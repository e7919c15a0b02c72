"""Grants and the Patreon import: entitlements given without a subscription, patrons imported
from Patreon with their history, and the confirmed mapping of Patreon's tiers to ours.

Revision ID: 6bf0f6ee28b6
Revises: 79a08b5663ff
Create Date: 2026-12-06 04:45:34.585385

Only adds tables. A grant entitles from ``starts_at`` until ``ends_at`` (NULL: until ended),
read against the clock; ``patreon_patrons`` has one row per member, pointing at the grant that
carries a paid-up patron's Patreon period (SET NULL if the grant goes).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "6bf0f6ee28b6"
down_revision = "79a08b5663ff"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("tier_id", sa.Integer(), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "complimentary",
                "patreon",
                name="grant_source",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "ends_at IS NULL OR ends_at >= starts_at", name=op.f("ck_grants_ends_after_start")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["members.id"],
            name=op.f("fk_grants_created_by_id_members"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_grants_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tier_id"], ["tiers.id"], name=op.f("fk_grants_tier_id_tiers"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.create_index("ix_grants_member_id_ends_at", ["member_id", "ends_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_grants_tier_id"), ["tier_id"], unique=False)

    op.create_table(
        "patreon_tier_mappings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patreon_tier", sa.String(length=255), nullable=False),
        sa.Column("tier_id", sa.Integer(), nullable=False),
        sa.Column("confirmed_by_id", sa.Integer(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["confirmed_by_id"],
            ["members.id"],
            name=op.f("fk_patreon_tier_mappings_confirmed_by_id_members"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tier_id"],
            ["tiers.id"],
            name=op.f("fk_patreon_tier_mappings_tier_id_tiers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patreon_tier_mappings")),
        sa.UniqueConstraint("patreon_tier", name=op.f("uq_patreon_tier_mappings_patreon_tier")),
    )
    with op.batch_alter_table("patreon_tier_mappings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patreon_tier_mappings_tier_id"), ["tier_id"], unique=False
        )

    op.create_table(
        "patreon_patrons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("patreon_user_id", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "declined",
                "former",
                name="patreon_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("pledge_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "charge_frequency",
            sa.Enum(
                "monthly",
                "annual",
                name="patreon_charge_frequency",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("patreon_tier", sa.String(length=255), nullable=False),
        sa.Column("patronage_since_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_charge_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_charge_status", sa.String(length=32), nullable=False),
        sa.Column("next_charge_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifetime_amount", sa.BigInteger(), nullable=False),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tier_id", sa.Integer(), nullable=True),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("invited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "length(currency) = 3 AND currency = upper(currency)",
            name=op.f("ck_patreon_patrons_currency_iso"),
        ),
        sa.CheckConstraint(
            "lifetime_amount >= 0", name=op.f("ck_patreon_patrons_lifetime_amount_non_negative")
        ),
        sa.CheckConstraint(
            "pledge_amount >= 0", name=op.f("ck_patreon_patrons_pledge_amount_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["grants.id"],
            name=op.f("fk_patreon_patrons_grant_id_grants"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_patreon_patrons_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tier_id"],
            ["tiers.id"],
            name=op.f("fk_patreon_patrons_tier_id_tiers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patreon_patrons")),
        sa.UniqueConstraint("grant_id", name=op.f("uq_patreon_patrons_grant_id")),
        sa.UniqueConstraint("member_id", name=op.f("uq_patreon_patrons_member_id")),
    )
    with op.batch_alter_table("patreon_patrons", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patreon_patrons_invited_at"), ["invited_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_patreon_patrons_opened_at"), ["opened_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_patreon_patrons_patreon_user_id"), ["patreon_user_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_patreon_patrons_tier_id"), ["tier_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("patreon_patrons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patreon_patrons_tier_id"))
        batch_op.drop_index(batch_op.f("ix_patreon_patrons_patreon_user_id"))
        batch_op.drop_index(batch_op.f("ix_patreon_patrons_opened_at"))
        batch_op.drop_index(batch_op.f("ix_patreon_patrons_invited_at"))

    op.drop_table("patreon_patrons")
    with op.batch_alter_table("patreon_tier_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patreon_tier_mappings_tier_id"))

    op.drop_table("patreon_tier_mappings")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grants_tier_id"))
        batch_op.drop_index("ix_grants_member_id_ends_at")

    op.drop_table("grants")
