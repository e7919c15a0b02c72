"""Billing: one row per Stripe dispute, and what disputes withdraw from each payment; the
payment rollups count it apart from refunds.

Revision ID: 77ca07dbf5a3
Revises: 899a878ec2bb
Create Date: 2026-12-06 10:00:00.000000

``payments.disputed_amount`` starts at 0, and so does the rollup's column: the rollups still
equal the sums over the payments, with no rebuild. ``payments.disputed_at`` is kept, and now
says when a payment's first dispute was opened; disputes seen before this revision left only
that date, and are recorded whole by Stripe's next event about them (or a replay).

The CHECK on ``payments`` needs a batch copy of the table on SQLite. Nothing references
``payments`` while that runs: ``disputes`` is created after it, and dropped before it.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "77ca07dbf5a3"
down_revision = "899a878ec2bb"
branch_labels = None
depends_on = None

DISPUTE_STATUSES = (
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "appeal_needs_response",
    "appeal_under_review",
    "won",
    "lost",
    "prevented",
)


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch_op:
        batch_op.add_column(
            sa.Column("disputed_amount", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_check_constraint(
            op.f("ck_payments_dispute_within_amount"),
            "disputed_amount >= 0 AND disputed_amount <= amount",
        )
    op.add_column(
        "report_payment_months",
        sa.Column("disputed_amount", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_table(
        "disputes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stripe_dispute_id", sa.String(length=255), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("stripe_charge_id", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("withdrawn_amount", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                *DISPUTE_STATUSES,
                name="dispute_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("evidence_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_disputes_amount_non_negative")),
        sa.CheckConstraint(
            "length(currency) = 3 AND currency = upper(currency)",
            name=op.f("ck_disputes_currency_iso"),
        ),
        sa.CheckConstraint(
            "withdrawn_amount >= 0 AND withdrawn_amount <= amount",
            name=op.f("ck_disputes_withdrawn_within_amount"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_disputes_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
        sa.UniqueConstraint("stripe_dispute_id", name=op.f("uq_disputes_stripe_dispute_id")),
    )
    op.create_index("ix_disputes_payment_id", "disputes", ["payment_id"])
    op.create_index("ix_disputes_status_evidence_due_at", "disputes", ["status", "evidence_due_at"])


def downgrade() -> None:
    op.drop_index("ix_disputes_status_evidence_due_at", table_name="disputes")
    op.drop_index("ix_disputes_payment_id", table_name="disputes")
    op.drop_table("disputes")
    op.drop_column("report_payment_months", "disputed_amount")
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_constraint(op.f("ck_payments_dispute_within_amount"), type_="check")
        batch_op.drop_column("disputed_amount")
