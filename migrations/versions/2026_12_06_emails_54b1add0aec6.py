"""Emails: the outbox, the addresses that refuse mail, members' choice of mail, and when a
poll's opening and results were announced.

Revision ID: 54b1add0aec6
Revises: e651dc5daf2e
Create Date: 2026-12-06 12:30:00.000000

Only adds tables. ``outbox_messages.key`` is unique and NULL for messages that may repeat; a
message points at the job that delivers it (SET NULL when finished jobs are pruned).
``mail_preferences`` holds a member's choices only: no row means the topic's default. The two
columns added to ``polls`` are NULL for polls already published: they are not announced late
(the worker only announces an opening or a closing of the last day).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "54b1add0aec6"
down_revision = "e651dc5daf2e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bouncing_addresses",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("reply", sa.String(length=1000), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("first_bounced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_bounced_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "email = lower(email)", name=op.f("ck_bouncing_addresses_email_lowercase")
        ),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_bouncing_addresses")),
    )
    op.create_index(
        op.f("ix_bouncing_addresses_last_bounced_at"),
        "bouncing_addresses",
        ["last_bounced_at"],
        unique=False,
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("is_optional", sa.Boolean(), nullable=False),
        sa.Column("is_sensitive", sa.Boolean(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "sent",
                "bounced",
                "suppressed",
                "expired",
                name="message_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state <> 'sent' OR sent_at IS NOT NULL", name=op.f("ck_outbox_messages_sent_has_time")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_outbox_messages_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_outbox_messages_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_messages_key")),
    )
    op.create_index(
        op.f("ix_outbox_messages_created_at"), "outbox_messages", ["created_at"], unique=False
    )
    op.create_index(op.f("ix_outbox_messages_job_id"), "outbox_messages", ["job_id"], unique=False)
    op.create_index(
        op.f("ix_outbox_messages_member_id"), "outbox_messages", ["member_id"], unique=False
    )
    op.create_table(
        "mail_preferences",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("is_wanted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_mail_preferences_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", "topic", name=op.f("pk_mail_preferences")),
    )
    with op.batch_alter_table("polls") as batch_op:
        batch_op.add_column(
            sa.Column("opening_announced_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("results_announced_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("polls") as batch_op:
        batch_op.drop_column("results_announced_at")
        batch_op.drop_column("opening_announced_at")
    op.drop_table("mail_preferences")
    op.drop_index(op.f("ix_outbox_messages_member_id"), table_name="outbox_messages")
    op.drop_index(op.f("ix_outbox_messages_job_id"), table_name="outbox_messages")
    op.drop_index(op.f("ix_outbox_messages_created_at"), table_name="outbox_messages")
    op.drop_table("outbox_messages")
    op.drop_index(op.f("ix_bouncing_addresses_last_bounced_at"), table_name="bouncing_addresses")
    op.drop_table("bouncing_addresses")
