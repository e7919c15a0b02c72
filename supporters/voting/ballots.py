"""Casting a ballot: the vote path, tuned for speed (see ``bench/vote_bench.py``); and ballots
imported in bulk.

A ballot is one row per member and poll (the database's unique constraint decides between
concurrent submissions) with its choices beside it. Its statements are built once and reused:
the ballot is upserted in one statement, and its choices replaced in one more on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.util import identity_key

from supporters.billing.models import Subscription
from supporters.db import insert_many
from supporters.extensions import db
from supporters.members.models import Member
from supporters.voting import clock
from supporters.voting.eligibility import check_eligibility
from supporters.voting.errors import InvalidBallot, NotEligible, PollNotFound, PollNotOpen
from supporters.voting.models import WEIGHT_SCALE, Poll, PollState, Vote, VoteChoice


def get_ballot(poll_id: int, member_id: int) -> Vote | None:
    """The member's ballot in the poll, if they have cast one."""
    return db.session.scalar(
        sa.select(Vote).where(Vote.poll_id == poll_id, Vote.member_id == member_id)
    )


def chosen_option_ids(vote: Vote | None) -> set[int]:
    """The options a ballot chose (none without a ballot)."""
    return {choice.option_id for choice in vote.choices} if vote else set()


@dataclass(frozen=True)
class CastBallot:
    """What :func:`cast_vote` stored."""

    vote_id: int
    option_ids: tuple[int, ...]
    weight: int
    is_new: bool  # False when it replaced an earlier ballot


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT (poll_id, member_id) DO UPDATE ... RETURNING``, built once."""
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    votes = cast(sa.Table, Vote.__table__)
    at = sa.bindparam("at", type_=votes.c.created_at.type)
    statement = insert(votes).values(
        poll_id=sa.bindparam("poll_id"),
        member_id=sa.bindparam("member_id"),
        weight=sa.bindparam("weight"),
        created_at=at,
        updated_at=at,
    )
    return statement.on_conflict_do_update(
        index_elements=[votes.c.poll_id, votes.c.member_id],
        set_={
            "weight": statement.excluded.weight,
            "updated_at": statement.excluded.updated_at,
            "changes": votes.c.changes + 1,
        },
    ).returning(votes.c.id, votes.c.changes)


def _upsert_ballot(poll_id: int, member_id: int, weight: int, at: dt.datetime) -> tuple[int, bool]:
    """Insert the member's ballot row, or take the one already there; returns (id, is new).

    One statement, one round trip: the unique constraint decides between concurrent
    submissions (two tabs, a double click), and on PostgreSQL ``ON CONFLICT DO UPDATE`` leaves
    the row locked until commit, as ``SELECT ... FOR UPDATE`` would, so replacing the choices
    after it is serialised per ballot; each waiting submission then reads the choices the one
    before it committed. (SQLite has a single writer: the transaction already excludes others.)
    """
    statement = _upsert_statement(db.session.get_bind().dialect.name)
    vote_id, changes = db.session.execute(
        statement, {"poll_id": poll_id, "member_id": member_id, "weight": weight, "at": at}
    ).one()
    return int(vote_id), changes == 0


_CHOICES = cast(sa.Table, VoteChoice.__table__)

# PostgreSQL: one statement. It runs after the upsert has locked the ballot, so its snapshot
# holds every choice committed before; unchosen ones go, chosen ones already there stay.
_REPLACE_CHOICES_POSTGRESQL = sa.text(
    """
    WITH dropped AS (
        DELETE FROM vote_choices
        WHERE vote_id = :vote_id AND NOT (option_id = ANY(:option_ids))
    )
    INSERT INTO vote_choices (vote_id, poll_id, option_id)
    SELECT :vote_id, :poll_id, chosen FROM unnest(:option_ids) AS chosen
    ON CONFLICT (vote_id, option_id) DO NOTHING
    """
).bindparams(sa.bindparam("option_ids", type_=postgresql.ARRAY(sa.Integer)))
_DROP_UNCHOSEN = sa.delete(_CHOICES).where(
    _CHOICES.c.vote_id == sa.bindparam("vote_id"),
    _CHOICES.c.option_id.not_in(sa.bindparam("option_ids", expanding=True)),
)
_ADD_CHOSEN = (
    sqlite.insert(_CHOICES)
    .values(
        vote_id=sa.bindparam("vote_id"),
        poll_id=sa.bindparam("poll_id"),
        option_id=sa.bindparam("option_id"),
    )
    .on_conflict_do_nothing(index_elements=[_CHOICES.c.vote_id, _CHOICES.c.option_id])
)


def _replace_choices(vote_id: int, poll_id: int, option_ids: list[int]) -> None:
    """Make the ballot's choices exactly ``option_ids``, leaving those that stay untouched."""
    params = {"vote_id": vote_id, "poll_id": poll_id, "option_ids": option_ids}
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_REPLACE_CHOICES_POSTGRESQL, params)
        return
    db.session.execute(_DROP_UNCHOSEN, params)
    db.session.execute(
        _ADD_CHOSEN,
        [{"vote_id": vote_id, "poll_id": poll_id, "option_id": option} for option in option_ids],
    )


def validate_choices(poll: Poll, option_ids: Iterable[int]) -> list[int]:
    """The distinct options chosen, checked against the poll.

    :raises InvalidBallot: none chosen, more than allowed, or an option of another poll.
    """
    chosen = list(dict.fromkeys(option_ids))
    if not chosen:
        raise InvalidBallot(_("Choose at least one topic."))
    if len(chosen) > poll.max_choices:
        raise InvalidBallot(
            ngettext(
                "You can choose only %(num)d topic in this poll.",
                "You can choose up to %(num)d topics in this poll.",
                poll.max_choices,
            )
        )
    known = {option.id for option in poll.options}
    if not set(chosen) <= known:
        raise InvalidBallot(_("That choice is not one of this poll's topics."))
    return chosen


def cast_vote(
    poll: Poll,
    member: Member,
    option_ids: Sequence[int],
    subscription: Subscription | None = None,
) -> CastBallot:
    """Record (or replace) the member's ballot in an open poll, with its weight as of now.

    ``subscription``: the member's current one, if the caller has it (see
    :func:`check_eligibility`).

    :raises PollNotFound: a draft.
    :raises PollNotOpen: not open yet, or closed.
    :raises NotEligible: not an entitled patron, or not of an allowed tier.
    :raises InvalidBallot: no choice, too many, or an option of another poll.
    """
    at = clock.now()
    state = clock.observed_state(poll, at)
    if state is PollState.DRAFT:
        raise PollNotFound(_("There is no such poll."))
    if state is PollState.SCHEDULED:
        raise PollNotOpen(_("This poll has not opened yet."))
    if state is PollState.CLOSED:
        raise PollNotOpen(_("This poll has closed: ballots can no longer be cast or changed."))
    eligibility = check_eligibility(poll, member, at, subscription)
    if not eligibility.may_vote:
        raise NotEligible(eligibility.message)
    chosen = validate_choices(poll, option_ids)

    vote_id, is_new = _upsert_ballot(poll.id, member.id, eligibility.weight, at)
    if is_new:
        # The poll's row stays locked until commit: new ballots in one poll count one at a time.
        db.session.execute(_COUNT_BALLOT, {"poll_id": poll.id})
        db.session.expire(poll, ["ballot_count"])
    _replace_choices(vote_id, poll.id, chosen)
    # Core statements changed rows the session may hold: let it read them afresh.
    stale = db.session.identity_map.get(identity_key(Vote, vote_id))
    if stale is not None:
        db.session.expire(stale)
    return CastBallot(vote_id, tuple(chosen), eligibility.weight, is_new=is_new)


_COUNT_BALLOT = (
    sa.update(Poll)
    .where(Poll.id == sa.bindparam("poll_id"))
    .values(ballot_count=Poll.ballot_count + 1)
    .execution_options(synchronize_session=False)
)


class ImportedBallot(NamedTuple):
    """A ballot as it was cast: in a history brought in bulk (the demo's), not through a form."""

    poll_id: int
    member_id: int
    option_ids: tuple[int, ...]
    cast_at: dt.datetime
    weight: int = WEIGHT_SCALE


def import_ballots(ballots: Sequence[ImportedBallot]) -> None:
    """Add ballots and their choices in bulk, and count them into their polls.

    Taken as they were cast: the rules of the vote path (open poll, eligibility, how many
    choices) are not applied again. The database still refuses a second ballot of a member in
    a poll, and a choice of another poll's option.

    :raises sqlalchemy.exc.IntegrityError: either of those; roll back.
    """
    vote_ids = insert_many(
        Vote,
        [
            {
                "poll_id": ballot.poll_id,
                "member_id": ballot.member_id,
                "weight": ballot.weight,
                "created_at": ballot.cast_at,
                "updated_at": ballot.cast_at,
            }
            for ballot in ballots
        ],
        returning_ids=True,
    )
    insert_many(
        VoteChoice,
        [
            {"vote_id": vote_id, "poll_id": ballot.poll_id, "option_id": option_id}
            for vote_id, ballot in zip(vote_ids, ballots, strict=True)
            for option_id in ballot.option_ids
        ],
    )
    for poll_id, count in Counter(ballot.poll_id for ballot in ballots).items():
        db.session.execute(_COUNT_BALLOTS, {"poll_id": poll_id, "count": count})
        poll = db.session.identity_map.get(identity_key(Poll, poll_id))
        if poll is not None:
            db.session.expire(poll, ["ballot_count"])


_COUNT_BALLOTS = (
    sa.update(Poll)
    .where(Poll.id == sa.bindparam("poll_id"))
    .values(ballot_count=Poll.ballot_count + sa.bindparam("count"))
    .execution_options(synchronize_session=False)
)
