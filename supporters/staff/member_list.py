"""The members list: search, filters, sorting and keyset pagination, for pages and exports.

Pages are walked by keyset (the sort values of the last row shown), never by OFFSET, so page
1,000 costs what page 1 costs; each sort has an index (``ix_members_created_at_id``,
``ix_members_display_name_id``, the unique email). Search matches any part of the name or the
address; on PostgreSQL a trigram index (``ix_members_search``) answers it.

Filters on the subscription use EXISTS, so the database can start from whichever side is
smaller: a member has at most one live subscription, which is their current one; for an ended
status, the member must have such a subscription and no live one.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from supporters.billing.membership import LIVE_STATUSES
from supporters.billing.models import Interval, Subscription, SubscriptionStatus, Tier
from supporters.extensions import db
from supporters.members.models import DISPLAY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH, Member
from supporters.params import DB_INT_MAX, is_safe_text

PAGE_SIZE = 50
EXPORT_CHUNK = 1_000
NO_SUBSCRIPTION = "none"
CUSTOM = "custom"
ENDED = (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)
SORTS = ("newest", "oldest", "name", "email")


class BadCursor(ValueError):
    """A page link whose position cannot be read (edited by hand, or from another sort)."""


@dataclasses.dataclass(frozen=True)
class MemberFilter:
    """What the list shows: a search, filters and an order. Empty values filter nothing."""

    q: str = ""
    status: str = ""  # a subscription status, NO_SUBSCRIPTION, or "" for any
    tier: str = ""  # a tier id, CUSTOM, or ""
    interval: str = ""  # "month", "year" or ""
    joined_from: dt.date | None = None
    joined_to: dt.date | None = None
    sort: str = "newest"

    def conditions(self) -> list[Any]:
        conditions: list[Any] = []
        q = self.q.strip()
        if q:
            pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(
                sa.or_(
                    Member.email.like(pattern.lower(), escape="\\"),
                    Member.display_name.ilike(pattern, escape="\\"),
                )
            )
        if self.joined_from:
            conditions.append(Member.created_at >= _midnight(self.joined_from))
        if self.joined_to and self.joined_to < dt.date.max:  # the last day has no day after
            conditions.append(Member.created_at < _midnight(self.joined_to + dt.timedelta(days=1)))
        if self.status == NO_SUBSCRIPTION:
            conditions.append(~sa.exists().where(Subscription.member_id == Member.id))
            return conditions
        on_subscription: list[Any] = []
        if self.tier == CUSTOM:
            on_subscription.append(Subscription.tier_id.is_(None))
        elif self.tier.isdigit():
            on_subscription.append(Subscription.tier_id == int(self.tier))
        if self.interval in {i.value for i in Interval}:
            on_subscription.append(Subscription.interval == Interval(self.interval))
        statuses = {s.value for s in SubscriptionStatus}
        if self.status in statuses:
            status = SubscriptionStatus(self.status)
            on_subscription.append(Subscription.status == status)
            if status in ENDED:
                conditions.append(~_has_subscription(Subscription.status.in_(LIVE_STATUSES)))
        elif on_subscription:
            on_subscription.append(Subscription.status.in_(LIVE_STATUSES))
        if on_subscription:
            conditions.append(_has_subscription(*on_subscription))
        return conditions

    @property
    def order(self) -> tuple[Any, ...]:
        return _ORDER[self.sort if self.sort in SORTS else "newest"]

    def key(self, member: Member) -> list[Any]:
        """The member's position in this order, as it goes into a page link."""
        if self.sort == "name":
            return [member.display_name, member.id]
        if self.sort == "email":
            return [member.email]
        return [member.created_at.isoformat(), member.id]


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _has_subscription(*conditions: Any) -> Any:
    return sa.exists().where(Subscription.member_id == Member.id, *conditions)


_ORDER: dict[str, tuple[Any, ...]] = {
    "newest": (Member.created_at.desc(), Member.id.desc()),
    "oldest": (Member.created_at.asc(), Member.id.asc()),
    "name": (Member.display_name.asc(), Member.id.asc()),
    "email": (Member.email.asc(),),
}
_COLUMNS: dict[str, tuple[Any, ...]] = {
    "newest": (Member.created_at, Member.id),
    "oldest": (Member.created_at, Member.id),
    "name": (Member.display_name, Member.id),
    "email": (Member.email,),
}


def encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode_cursor(sort: str, cursor: str) -> tuple[Any, ...]:
    """:raises BadCursor: not a position in this sort order."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort in ("newest", "oldest"):
            when, member_id = raw
            moment = dt.datetime.fromisoformat(when)
            if moment.tzinfo is None:
                raise ValueError
            # In UTC, as the column compares it; a moment with no year in UTC overflows here.
            return (moment.astimezone(dt.UTC), _member_id(member_id))
        if sort == "name":
            name, member_id = raw
            return (_text(name, DISPLAY_NAME_MAX_LENGTH), _member_id(member_id))
        (email,) = raw
        return (_text(email, EMAIL_MAX_LENGTH),)
    # A link edited by hand may hold anything: JSON nested too deep, a date beyond the calendar.
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise BadCursor(cursor) from exc


def _member_id(value: Any) -> int:
    # JSON's true is an int to Python, and PostgreSQL compares no integer with a boolean.
    if type(value) is not int or not 0 < value <= DB_INT_MAX:
        raise ValueError
    return value


def _text(value: Any, max_length: int) -> str:
    if not isinstance(value, str) or len(value) > max_length or not is_safe_text(value):
        raise ValueError
    return value


def _beyond(sort: str, key: tuple[Any, ...], *, backwards: bool) -> Any:
    """Rows after ``key`` in the sort order (before it when walking backwards)."""
    columns = sa.tuple_(*_COLUMNS[sort]) if len(key) > 1 else _COLUMNS[sort][0]
    value = sa.tuple_(*key) if len(key) > 1 else key[0]
    descending = sort == "newest"
    return columns < value if descending != backwards else columns > value


@dataclasses.dataclass(frozen=True)
class Page:
    members: list[Member]
    current: dict[int, Subscription]  # each member's current subscription, when they have one
    next_cursor: str | None
    previous_cursor: str | None


def _reverse(order: tuple[Any, ...]) -> tuple[Any, ...]:
    flipped = []
    for clause in order:
        element, modifier = clause.element, clause.modifier
        flipped.append(element.desc() if modifier is sa.sql.operators.asc_op else element.asc())
    return tuple(flipped)


def current_subscriptions(member_ids: Sequence[int]) -> dict[int, Subscription]:
    """Each member's current subscription (the live one, else the newest), as billing picks it."""
    if not member_ids:
        return {}
    rows = db.session.scalars(
        sa.select(Subscription)
        .where(Subscription.member_id.in_(member_ids))
        .options(sa.orm.joinedload(Subscription.tier))
    ).all()
    return _pick_current(rows)


def _pick_current(rows: Sequence[Any]) -> dict[int, Any]:
    best: dict[int, Any] = {}
    for row in rows:  # a handful per member of one page or chunk
        held = best.get(row.member_id)
        if held is None or _rank(row) < _rank(held):
            best[row.member_id] = row
    return best


def _rank(subscription: Any) -> tuple[int, float, int]:
    live = 0 if subscription.status in LIVE_STATUSES else 1
    return (live, -subscription.created_at.timestamp(), -subscription.id)


def page(
    filters: MemberFilter, *, after: str = "", before: str = "", size: int | None = None
) -> Page:
    """One page of the list.

    :raises BadCursor: ``after`` or ``before`` is not a position in this order.
    """
    size = size or PAGE_SIZE
    sort = filters.sort if filters.sort in SORTS else "newest"
    statement = sa.select(Member).where(*filters.conditions())
    backwards = bool(before) and not after
    if after:
        statement = statement.where(_beyond(sort, _decode_cursor(sort, after), backwards=False))
    elif before:
        statement = statement.where(_beyond(sort, _decode_cursor(sort, before), backwards=True))
    order = _reverse(filters.order) if backwards else filters.order
    rows = list(db.session.scalars(statement.order_by(*order).limit(size + 1)))
    has_more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    first = encode_cursor(filters.key(rows[0])) if rows else None
    last = encode_cursor(filters.key(rows[-1])) if rows else None
    if backwards:  # came back from a later page: there is one after, maybe one before
        next_cursor, previous_cursor = last, first if has_more else None
    else:
        next_cursor, previous_cursor = last if has_more else None, first if after else None
    return Page(rows, current_subscriptions([m.id for m in rows]), next_cursor, previous_cursor)


MEMBER_COLUMNS = (
    Member.id,
    Member.email,
    Member.display_name,
    Member.role,
    Member.created_at,
)
SUBSCRIPTION_COLUMNS = (
    Subscription.id,
    Subscription.member_id,
    Subscription.status,
    Subscription.tier_id,
    Subscription.interval,
    Subscription.amount,
    Subscription.currency,
    Subscription.started_at,
    Subscription.cancel_at_period_end,
    Subscription.current_period_end,
    Subscription.created_at,
)


def iter_members(filters: MemberFilter, chunk: int = EXPORT_CHUNK) -> Iterator[tuple[Any, Any]]:
    """Every member the filters match, in order, with their current subscription, as plain
    rows a chunk at a time: memory stays flat however many go out (exports)."""
    sort = filters.sort if filters.sort in SORTS else "newest"
    key: tuple[Any, ...] | None = None
    while True:
        statement = sa.select(*MEMBER_COLUMNS).where(*filters.conditions())
        if key is not None:
            statement = statement.where(_beyond(sort, key, backwards=False))
        rows = db.session.execute(statement.order_by(*filters.order).limit(chunk)).all()
        if not rows:
            return
        subscriptions = db.session.execute(
            sa.select(*SUBSCRIPTION_COLUMNS).where(
                Subscription.member_id.in_([row.id for row in rows])
            )
        ).all()
        current = _pick_current(subscriptions)
        for row in rows:
            yield row, current.get(row.id)
        last = rows[-1]
        key = tuple(getattr(last, column.key) for column in _COLUMNS[sort])


def tier_choices() -> list[tuple[int, str]]:
    """The tiers to filter by, in their order on the support page: (id, name)."""
    statement = sa.select(Tier.id, Tier.name).order_by(Tier.position)
    return [(tier_id, name) for tier_id, name in db.session.execute(statement)]
