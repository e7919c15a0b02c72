"""Jobs: background work kept in the app's own database, and the schedule of periodic jobs.

Revision ID: e651dc5daf2e
Revises: 8cbff54fce44
Create Date: 2026-12-06 12:00:00.000000

Only adds two tables. ``jobs.key`` is unique and NULL for jobs that may repeat; workers look
for due jobs through ``ix_jobs_state_run_at``. ``job_schedules`` is created after ``jobs``,
which it references, and dropped before it.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e651dc5daf2e"
down_revision = "8cbff54fce44"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "running",
                "failed",
                "done",
                "dead",
                name="job_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_by", sa.String(length=255), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_jobs_attempts_non_negative")),
        sa.CheckConstraint(
            "state <> 'running' OR locked_until IS NOT NULL", name=op.f("ck_jobs_running_leased")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_jobs_key")),
    )
    op.create_index("ix_jobs_state_run_at", "jobs", ["state", "run_at"], unique=False)
    op.create_table(
        "job_schedules",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("period_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_job_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["last_job_id"],
            ["jobs.id"],
            name=op.f("fk_job_schedules_last_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_schedules")),
    )
    op.create_index(
        op.f("ix_job_schedules_last_job_id"), "job_schedules", ["last_job_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_job_schedules_last_job_id"), table_name="job_schedules")
    op.drop_table("job_schedules")
    op.drop_index("ix_jobs_state_run_at", table_name="jobs")
    op.drop_table("jobs")
