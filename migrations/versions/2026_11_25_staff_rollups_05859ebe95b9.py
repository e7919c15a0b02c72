"""Staff reports: the recurring-revenue ledger, its monthly rollups, and the list indexes.

Revision ID: 05859ebe95b9
Revises: dc4c63f2a970
Create Date: 2026-11-25 15:55:28.311579

Only adds. Indexes on existing tables are created with plain CREATE INDEX, never a batch
copy: on SQLite a copy of ``members`` would drop the old table and cascade into every table
that references it. The tables start empty; fill them with ``flask --app supporters staff
rebuild-rollups`` on a database that already holds subscriptions and payments.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "05859ebe95b9"
down_revision = "dc4c63f2a970"
branch_labels = None
depends_on = None

MOVEMENT_KINDS = (
    "observed",
    "new",
    "reactivation",
    "expansion",
    "contraction",
    "transfer",
    "voluntary_churn",
    "failed_churn",
)


def _kind_column(name: str, values: tuple[str, ...], enum_name: str) -> sa.Column[str]:
    return sa.Column(
        name,
        sa.Enum(*values, name=enum_name, native_enum=False, create_constraint=True),
        nullable=False,
    )


def _currency(table: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(
        "length(currency) = 3 AND currency = upper(currency)",
        name=op.f(f"ck_{table}_currency_iso"),
    )


def upgrade() -> None:
    op.create_table(
        "report_movements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tier_key", sa.Integer(), nullable=False),
        _kind_column("kind", MOVEMENT_KINDS, "movement_kind"),
        sa.Column("mrr", sa.BigInteger(), nullable=False),
        sa.Column("subscriptions", sa.Integer(), nullable=False),
        sa.Column("patrons", sa.Integer(), nullable=False),
        sa.Column("cohort_month", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        _currency("report_movements"),
        sa.CheckConstraint(
            "patrons = 0 OR cohort_month IS NOT NULL",
            name=op.f("ck_report_movements_patrons_have_cohort"),
        ),
        sa.CheckConstraint("patrons IN (-1, 0, 1)", name=op.f("ck_report_movements_patrons_unit")),
        sa.CheckConstraint(
            "subscriptions IN (-1, 0, 1)", name=op.f("ck_report_movements_subscriptions_unit")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_movements")),
    )
    op.create_index("ix_report_movements_member_id", "report_movements", ["member_id"])
    op.create_index("ix_report_movements_subscription_id", "report_movements", ["subscription_id"])

    op.create_table(
        "report_subscription_months",
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tier_key", sa.Integer(), nullable=False),
        _kind_column("kind", MOVEMENT_KINDS, "movement_kind"),
        sa.Column("mrr", sa.BigInteger(), nullable=False),
        sa.Column("subscriptions", sa.Integer(), nullable=False),
        sa.Column("patrons", sa.Integer(), nullable=False),
        _currency("report_subscription_months"),
        sa.PrimaryKeyConstraint(
            "month", "currency", "tier_key", "kind", name=op.f("pk_report_subscription_months")
        ),
    )
    op.create_table(
        "report_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("mrr", sa.BigInteger(), nullable=False),
        sa.Column("patrons", sa.Integer(), nullable=False),
        _currency("report_days"),
        sa.PrimaryKeyConstraint("day", "currency", name=op.f("pk_report_days")),
    )
    op.create_table(
        "report_cohorts",
        sa.Column("cohort_month", sa.Integer(), nullable=False),
        sa.Column("months_after", sa.Integer(), nullable=False),
        sa.Column("patrons", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("cohort_month", "months_after", name=op.f("pk_report_cohorts")),
    )
    op.create_table(
        "report_payment_months",
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        _kind_column("kind", ("subscription", "one_time"), "payment_kind"),
        sa.Column("paid_count", sa.Integer(), nullable=False),
        sa.Column("paid_amount", sa.BigInteger(), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("failed_amount", sa.BigInteger(), nullable=False),
        sa.Column("recovered_count", sa.Integer(), nullable=False),
        sa.Column("recovered_amount", sa.BigInteger(), nullable=False),
        _currency("report_payment_months"),
        sa.PrimaryKeyConstraint("month", "currency", "kind", name=op.f("pk_report_payment_months")),
    )

    # The members list (keyset by join date or name; search) and the at-risk list.
    op.create_index("ix_members_created_at_id", "members", ["created_at", "id"])
    op.create_index("ix_members_display_name_id", "members", ["display_name", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # Trusted since PostgreSQL 13: the database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_members_search",
        "members",
        ["email", "display_name"],
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops", "display_name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_subscriptions_cancel_at_period_end",
        "subscriptions",
        ["cancel_at_period_end", "current_period_end"],
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_cancel_at_period_end", table_name="subscriptions")
    op.drop_index("ix_members_search", table_name="members")
    op.drop_index("ix_members_display_name_id", table_name="members")
    op.drop_index("ix_members_created_at_id", table_name="members")
    op.drop_table("report_payment_months")
    op.drop_table("report_cohorts")
    op.drop_table("report_days")
    op.drop_table("report_subscription_months")
    op.drop_index("ix_report_movements_subscription_id", table_name="report_movements")
    op.drop_index("ix_report_movements_member_id", table_name="report_movements")
    op.drop_table("report_movements")
