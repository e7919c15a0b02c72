"""Grants: membership that staff give, or that an import carries over, without a subscription.

A grant entitles its member to a tier's benefits from ``starts_at`` until ``ends_at`` (NULL:
until staff end it). It moves no money: it never counts as recurring revenue. Whether it
entitles is decided at read time from the clock (``starts_at <= now < ends_at``), so a grant
lapses on its own, without a job; ending one early sets ``ends_at`` to the moment it ended, so
its history stays readable.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import Mapped, mapped_column, relationship

from supporters.billing.models import Tier
from supporters.db import enum_column, utcnow
from supporters.extensions import Model
from supporters.members.models import Member

GRANT_REASON_MAX_LENGTH = 500


class GrantSource(enum.StrEnum):
    """Where a grant comes from."""

    COMPLIMENTARY = "complimentary"  # given by staff
    PATREON = "patreon"  # a paid-up patron imported from Patreon, until their paid period ends

    @property
    def label(self) -> str:
        """The source as staff read it beside a member's status."""
        labels: dict[GrantSource, str] = {
            GrantSource.COMPLIMENTARY: _("complimentary"),
            GrantSource.PATREON: _("via Patreon"),
        }
        return labels[self]


class Grant(Model):
    """One member's entitlement to a tier for a while, given without a subscription."""

    __tablename__ = "grants"
    __table_args__ = (
        sa.CheckConstraint("ends_at IS NULL OR ends_at >= starts_at", name="ends_after_start"),
        # Member first: "this member's grants" is the question every read asks.
        sa.Index("ix_grants_member_id_ends_at", "member_id", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("members.id", ondelete="CASCADE"))
    tier_id: Mapped[int] = mapped_column(sa.ForeignKey("tiers.id", ondelete="RESTRICT"), index=True)
    source: Mapped[GrantSource] = mapped_column(enum_column(GrantSource, "grant_source"))
    starts_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[dt.datetime | None]
    reason: Mapped[str] = mapped_column(sa.String(GRANT_REASON_MAX_LENGTH), default="")
    # NULL: made by an import or the command line, or its author's account was deleted.
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    member: Mapped[Member] = relationship(foreign_keys=[member_id])
    tier: Mapped[Tier] = relationship()

    def is_entitling_at(self, at: dt.datetime) -> bool:
        """Does this grant entitle its member at ``at``?"""
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)
