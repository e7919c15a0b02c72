"""Patrons imported from Patreon, and how Patreon's tiers map to ours.

One row per member: the same person twice in an export (their address in two spellings) is one
member and one row. Amounts are integers in the minor unit of the pledge's own currency.
``invited_at`` and ``opened_at`` are set by the invitation to move over, when it is sent and
when its link is first opened; ``offer_id`` is the invitation's offer (its link, and whether it
was taken up), ``reminder_day`` the latest reminder day whose reminder was sent.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import Mapped, mapped_column, relationship

from supporters.billing.grant_models import Grant
from supporters.billing.models import Offer, Tier
from supporters.db import currency_check, enum_column, utcnow
from supporters.extensions import Model
from supporters.members.models import Member

PATREON_TIER_MAX_LENGTH = 255


class PatronStatus(enum.StrEnum):
    """Patreon's "Patron Status" column."""

    ACTIVE = "active"
    DECLINED = "declined"
    FORMER = "former"

    @property
    def label(self) -> str:
        labels: dict[PatronStatus, str] = {
            PatronStatus.ACTIVE: _("Active patron"),
            PatronStatus.DECLINED: _("Declined patron"),
            PatronStatus.FORMER: _("Former patron"),
        }
        return labels[self]


class ChargeFrequency(enum.StrEnum):
    """Patreon's "Charge Frequency": a pledge charged each month, or once a year."""

    MONTHLY = "monthly"
    ANNUAL = "annual"


class ImportedPatron(Model):
    """A member as Patreon knew them: their pledge and its history, and what the import gave."""

    __tablename__ = "patreon_patrons"
    __table_args__ = (
        sa.CheckConstraint("pledge_amount >= 0", name="pledge_amount_non_negative"),
        sa.CheckConstraint("lifetime_amount >= 0", name="lifetime_amount_non_negative"),
        sa.CheckConstraint("reminder_day > 0", name="reminder_day_positive"),
        currency_check(),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), unique=True
    )
    patreon_user_id: Mapped[str] = mapped_column(sa.String(64), default="", index=True)
    status: Mapped[PatronStatus] = mapped_column(enum_column(PatronStatus, "patreon_status"))
    pledge_amount: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    currency: Mapped[str] = mapped_column(sa.String(3))
    charge_frequency: Mapped[ChargeFrequency] = mapped_column(
        enum_column(ChargeFrequency, "patreon_charge_frequency"), default=ChargeFrequency.MONTHLY
    )
    patreon_tier: Mapped[str] = mapped_column(sa.String(PATREON_TIER_MAX_LENGTH), default="")
    patronage_since_at: Mapped[dt.datetime | None]
    last_charge_at: Mapped[dt.datetime | None]
    last_charge_status: Mapped[str] = mapped_column(sa.String(32), default="")
    next_charge_at: Mapped[dt.datetime | None]
    lifetime_amount: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    access_expires_at: Mapped[dt.datetime | None]
    # The local tier the pledge maps to (NULL: the mapping had none when imported).
    tier_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("tiers.id", ondelete="SET NULL"), index=True
    )
    # The grant that keeps a paid-up patron entitled until their paid period ends.
    grant_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("grants.id", ondelete="SET NULL"), unique=True
    )
    invited_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    # The invitation's offer (SET NULL: an offer deleted with its member goes with the row).
    offer_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("offers.id", ondelete="SET NULL"), unique=True
    )
    reminder_day: Mapped[int | None]
    opened_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    member: Mapped[Member] = relationship()
    tier: Mapped[Tier | None] = relationship()
    grant: Mapped[Grant | None] = relationship()
    offer: Mapped[Offer | None] = relationship()

    @property
    def monthly_pledge(self) -> int:
        """The pledge per month in minor units: an annual one counts as a twelfth."""
        if self.charge_frequency is ChargeFrequency.ANNUAL:
            return self.pledge_amount // 12
        return self.pledge_amount


class TierMapping(Model):
    """Which local tier the patrons of a Patreon tier are patrons of here, as an admin confirmed.

    ``patreon_tier`` "" stands for pledges made without a Patreon tier.
    """

    __tablename__ = "patreon_tier_mappings"

    id: Mapped[int] = mapped_column(primary_key=True)
    patreon_tier: Mapped[str] = mapped_column(sa.String(PATREON_TIER_MAX_LENGTH), unique=True)
    tier_id: Mapped[int] = mapped_column(sa.ForeignKey("tiers.id", ondelete="CASCADE"), index=True)
    confirmed_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="SET NULL")
    )
    confirmed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    tier: Mapped[Tier] = relationship()
