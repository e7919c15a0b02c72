"""The audit log: who on the staff changed what, and when. Rows are only ever added."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from supporters.db import utcnow
from supporters.extensions import Model, db


class AuditEntry(Model):
    """One staff (or command-line) action, with enough detail to answer "who did this?"."""

    __tablename__ = "audit_entries"
    __table_args__ = (sa.Index("ix_audit_entries_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL: done from the command line or by the system, not by a signed-in person.
    actor_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target_type: Mapped[str] = mapped_column(sa.String(32), default="")
    target_id: Mapped[str] = mapped_column(sa.String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    ip_address: Mapped[str] = mapped_column(sa.String(45), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who makes a change, for the audit log: a signed-in person and where from, or (no member)
    the system or the command line."""

    member_id: int | None
    ip_address: str = ""


#: Changes the app makes by itself (a duplicate subscription cancelled, a poll's clock).
SYSTEM = Actor(None)


def record(action: str, actor: Actor, target: Any, /, **details: Any) -> AuditEntry:
    """Audit a change to ``target``, a row (named by its class and id), in this unit of work."""
    return record_action(
        action,
        actor_id=actor.member_id,
        target_type=type(target).__name__.lower(),
        target_id=target.id,
        details=details,
        ip_address=actor.ip_address,
    )


def record_action(
    action: str,
    *,
    actor_id: int | None,
    target_type: str = "",
    target_id: object = "",
    details: dict[str, Any] | None = None,
    ip_address: str = "",
) -> AuditEntry:
    """Add an audit entry to the current unit of work (the caller commits)."""
    entry = AuditEntry(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details or {},
        ip_address=ip_address,
    )
    db.session.add(entry)
    return entry
