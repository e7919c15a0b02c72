"""Polls, their options, topics (and topic proposals), votes and per-tier voting rules."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from supporters.billing.models import Tier
from supporters.db import enum_column, utcnow
from supporters.extensions import Model
from supporters.members.models import Member


class PollState(enum.StrEnum):
    """A draft is invisible to members; open and closed follow the clock once published."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    OPEN = "open"
    CLOSED = "closed"


class ResultsVisibility(enum.StrEnum):
    ALWAYS = "always"
    AFTER_VOTING = "after_voting"
    AFTER_CLOSING = "after_closing"


class Weighting(enum.StrEnum):
    """How much one patron's vote counts."""

    EQUAL = "equal"  # one patron, one vote
    TIER = "tier"  # a weight per tier, set by staff
    SQRT_AMOUNT = "sqrt_amount"  # the square root of the monthly amount


class TopicStatus(enum.StrEnum):
    """A topic's way from a patron's idea to a published article."""

    PROPOSED = "proposed"  # awaiting review
    REJECTED = "rejected"
    MERGED = "merged"  # folded into another topic
    SHORTLISTED = "shortlisted"  # approved: may be put to a vote
    COMMISSIONED = "commissioned"
    PUBLISHED = "published"
    DECLINED = "declined"  # the newsroom decided not to cover it, with a public reason


class Topic(Model):
    """A story idea: proposed by a patron or written by staff, perhaps voted on, perhaps covered."""

    __tablename__ = "topics"
    __table_args__ = (
        sa.CheckConstraint(
            "status <> 'merged' OR merged_into_id IS NOT NULL", name="merged_has_target"
        ),
        sa.CheckConstraint(
            "status <> 'published' OR article_url IS NOT NULL", name="published_has_article"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(160))
    pitch: Mapped[str] = mapped_column(sa.Text, default="")
    link_url: Mapped[str | None] = mapped_column(sa.String(500))
    status: Mapped[TopicStatus] = mapped_column(
        enum_column(TopicStatus, "topic_status"), default=TopicStatus.PROPOSED, index=True
    )
    proposed_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="SET NULL"), index=True
    )
    merged_into_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("topics.id", ondelete="SET NULL")
    )
    # Shown to the proposer (rejection) or published (declined coverage).
    status_reason: Mapped[str] = mapped_column(sa.Text, default="")
    article_url: Mapped[str | None] = mapped_column(sa.String(500))
    published_on: Mapped[dt.date | None]
    reviewed_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="SET NULL")
    )
    reviewed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    proposed_by: Mapped[Member | None] = relationship(foreign_keys=[proposed_by_id])
    merged_into: Mapped[Topic | None] = relationship(remote_side=[id])


class Poll(Model):
    """A question put to patrons with a few topics to choose from."""

    __tablename__ = "polls"
    __table_args__ = (
        sa.CheckConstraint("max_choices >= 1", name="max_choices_positive"),
        sa.CheckConstraint(
            "closes_at IS NULL OR opens_at IS NULL OR closes_at > opens_at",
            name="closes_after_opens",
        ),
        sa.CheckConstraint(
            "weight_cap_percent IS NULL OR (weight_cap_percent > 0 AND weight_cap_percent <= 100)",
            name="weight_cap_percent_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    question: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    # The stored state: draft until published, then scheduled or open as publishing found it,
    # and closed only when staff close the poll early. Past its opening and closing times the
    # clock decides on every read (clock.observed_state, closed_by): a GET writes nothing.
    state: Mapped[PollState] = mapped_column(
        enum_column(PollState, "poll_state"), default=PollState.DRAFT, index=True
    )
    opens_at: Mapped[dt.datetime | None]
    closes_at: Mapped[dt.datetime | None]
    # When staff closed the poll early (polls the clock closed keep it NULL: see ends_at).
    closed_at: Mapped[dt.datetime | None]
    max_choices: Mapped[int] = mapped_column(default=1)
    results_visibility: Mapped[ResultsVisibility] = mapped_column(
        enum_column(ResultsVisibility, "results_visibility"),
        default=ResultsVisibility.AFTER_VOTING,
    )
    weighting: Mapped[Weighting] = mapped_column(
        enum_column(Weighting, "poll_weighting"), default=Weighting.EQUAL
    )
    # No one member may hold more than this share of the poll's total weight.
    weight_cap_percent: Mapped[int | None]
    # False: every entitled patron may vote; True: only patrons of tiers whose rule allows it.
    is_restricted_to_tiers: Mapped[bool] = mapped_column(default=False)
    # An editor may decline to cover the winner, with a reason published on the poll page.
    decline_reason: Mapped[str] = mapped_column(sa.Text, default="")
    # Patrons who could vote, counted when staff close the poll early. NULL for a poll the clock
    # closes: its figure is counted from the membership history at its closing time instead
    # (results.count_eligible), so it does not drift as memberships change afterwards either.
    eligible_count: Mapped[int | None]
    # Ballots cast, raised in the transaction that casts a new one (ballots.cast_vote), so a
    # turnout is read rather than counted. Whatever else writes or deletes ballots must keep it
    # too (as ballots.import_ballots does).
    ballot_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # When the worker told patrons that the poll opened, and sent its results (voting.emails):
    # the clock opens and closes polls without a write, so these say what was announced.
    opening_announced_at: Mapped[dt.datetime | None]
    results_announced_at: Mapped[dt.datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    options: Mapped[list[PollOption]] = relationship(
        back_populates="poll", order_by="PollOption.position", cascade="all, delete-orphan"
    )
    tier_rules: Mapped[list[PollTierRule]] = relationship(
        back_populates="poll", cascade="all, delete-orphan"
    )

    @property
    def ends_at(self) -> dt.datetime | None:
        """When voting ends or ended: staff's early closing, else the closing time."""
        return self.closed_at or self.closes_at

    @classmethod
    def closed_by(cls, at: dt.datetime) -> sa.ColumnElement[bool]:
        """SQL: the poll is closed at ``at`` (closed by staff, or published and past its closing
        time), as ``clock.observed_state`` decides for one poll."""
        return sa.or_(
            cls.state == PollState.CLOSED,
            sa.and_(cls.state.in_((PollState.SCHEDULED, PollState.OPEN)), cls.closes_at <= at),
        )


class PollTierRule(Model):
    """A tier's standing in one poll: whether its patrons may vote, and their vote's weight."""

    __tablename__ = "poll_tier_rules"
    __table_args__ = (
        sa.UniqueConstraint("poll_id", "tier_id"),
        sa.CheckConstraint("weight >= 0", name="weight_non_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    poll_id: Mapped[int] = mapped_column(sa.ForeignKey("polls.id", ondelete="CASCADE"))
    tier_id: Mapped[int] = mapped_column(sa.ForeignKey("tiers.id", ondelete="CASCADE"), index=True)
    may_vote: Mapped[bool] = mapped_column(default=True)
    weight: Mapped[int] = mapped_column(default=1)

    poll: Mapped[Poll] = relationship(back_populates="tier_rules")
    tier: Mapped[Tier] = relationship()


class PollOption(Model):
    """A topic offered in a poll."""

    __tablename__ = "poll_options"
    __table_args__ = (
        sa.UniqueConstraint("poll_id", "topic_id"),
        # Lets vote_choices reference (option, poll) so a choice cannot name another poll's option.
        sa.UniqueConstraint("id", "poll_id", name="uq_poll_options_id_poll_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    poll_id: Mapped[int] = mapped_column(sa.ForeignKey("polls.id", ondelete="CASCADE"))
    topic_id: Mapped[int] = mapped_column(
        sa.ForeignKey("topics.id", ondelete="RESTRICT"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)

    poll: Mapped[Poll] = relationship(back_populates="options")
    topic: Mapped[Topic] = relationship()


# A ballot's weight is stored in millionths of a vote: an integer, so sums are exact and the
# same on every database. One patron, one vote is WEIGHT_SCALE.
WEIGHT_SCALE = 1_000_000


class Vote(Model):
    """A member's ballot in one poll: at most one per member and poll, enforced by the database.

    ``weight`` is a snapshot taken each time the ballot is submitted (see voting/weights.py):
    the results of a poll never move because someone changed tier or lapsed after voting.
    """

    __tablename__ = "votes"
    __table_args__ = (
        sa.UniqueConstraint("poll_id", "member_id"),
        sa.UniqueConstraint("id", "poll_id", name="uq_votes_id_poll_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    poll_id: Mapped[int] = mapped_column(sa.ForeignKey("polls.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    # Millionths of a vote (WEIGHT_SCALE); rows written without one count as one vote.
    weight: Mapped[int] = mapped_column(
        sa.BigInteger, default=WEIGHT_SCALE, server_default=str(WEIGHT_SCALE)
    )
    # How many times the ballot was changed: 0 when cast, and one more each time it is cast
    # again, so the statement that writes it says whether it made a new ballot.
    changes: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    choices: Mapped[list[VoteChoice]] = relationship(
        back_populates="vote", cascade="all, delete-orphan"
    )
    member: Mapped[Member] = relationship()


class VoteChoice(Model):
    """One option chosen on a ballot. The composite keys keep choice, ballot and poll together."""

    __tablename__ = "vote_choices"
    __table_args__ = (
        sa.UniqueConstraint("vote_id", "option_id"),
        # Results add up one poll's choices per option.
        sa.Index("ix_vote_choices_poll_option", "poll_id", "option_id"),
        sa.ForeignKeyConstraint(
            ["vote_id", "poll_id"],
            ["votes.id", "votes.poll_id"],
            name="fk_vote_choices_vote_poll",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["option_id", "poll_id"],
            ["poll_options.id", "poll_options.poll_id"],
            name="fk_vote_choices_option_poll",
            ondelete="CASCADE",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vote_id: Mapped[int]
    poll_id: Mapped[int]
    option_id: Mapped[int] = mapped_column(index=True)

    vote: Mapped[Vote] = relationship(back_populates="choices")
    # Written through option_id and poll_id; reading the option is all this is for.
    option: Mapped[PollOption] = relationship(viewonly=True)
