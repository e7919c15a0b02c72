"""The demo seeder: believable demo data for a first look (``flask --app supporters seed-demo``).

Everything is relative to the moment the command runs: eighteen months (``--history-months``)
of members joining, paying, lapsing and leaving, a poll that closed and became an article, and
a poll open now.
The bulk (members, customers, subscriptions, payments, votes) is written as plain rows with
executemany INSERTs, a chunk of members at a time, so a million members fit in bounded memory;
the whole run is one transaction, committed once at the end.
"""

from __future__ import annotations

import datetime as dt
import enum
import random
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
import sqlalchemy as sa

from supporters.audit import record_action
from supporters.billing import figures as billing_figures
from supporters.billing.models import (
    Customer,
    FundingGoal,
    GoalMeasure,
    Interval,
    Payment,
    PaymentKind,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    Tier,
    add_months,
)
from supporters.db import Base, utcnow
from supporters.extensions import db
from supporters.members.models import Member, Role
from supporters.staff.rebuild import rebuild
from supporters.voting import ballots
from supporters.voting.models import (
    Poll,
    PollOption,
    PollState,
    ResultsVisibility,
    Topic,
    TopicStatus,
    Vote,
    VoteChoice,
    Weighting,
)

Row = dict[str, Any]

CURRENCY = "EUR"
# Members generated and inserted together: bounds memory at any total.
CHUNK_SIZE = 5_000
ADMIN_EMAIL = "admin@example.org"
EDITOR_EMAIL = "editor@example.org"
EMAIL_DOMAINS = ("example.org", "example.com", "example.net")
ARTICLE_BASE_URL = "https://news.example.org"

SUBSCRIBER_SHARE = 0.8
YEARLY_SHARE = 0.18
CUSTOM_AMOUNT_SHARE = 0.08
CUSTOM_MONTHLY_AMOUNTS = (300, 700, 1500, 2000, 5000)
CUSTOM_YEARLY_AMOUNTS = (3000, 6000, 12000, 20000)
CLOSED_POLL_TURNOUT = 0.4
OPEN_POLL_TURNOUT = 0.3
# Stripe retries a failed renewal for about two weeks before it gives up and cancels.
RETRY_WINDOW = dt.timedelta(days=14)

# fmt: off
FIRST_NAMES = (
    "Anna", "Lukas", "Sofia", "Matteo", "Emma", "Noah", "Léa", "Jonas", "Marie", "Elias",
    "Chiara", "Luca", "Inès", "Hugo", "Zoë", "Finn", "Ingrid", "Mateo", "Julia", "Tomás",
    "Clara", "Pieter", "Aoife", "Oskar", "Sara", "Nikolai", "Eva", "Jan", "Amira", "Karim",
    "Lucía", "Ravi", "Elif", "Mehmet", "Hannah", "David", "Ana", "Sven", "Maja", "Olivier",
    "Giulia", "Kofi", "Fatima", "Daniel", "Laura", "Milan", "Nora", "Stefan", "Yasmin", "Paul",
)
LAST_NAMES = (
    "Schmidt", "Rossi", "Dubois", "Jansen", "García", "Novak", "Müller", "Bianchi", "Martin",
    "de Vries", "Fernández", "Kowalski", "Nielsen", "Bernard", "Murphy", "Lindqvist", "Costa",
    "Horvath", "Weber", "Moreau", "Esposito", "Peeters", "Silva", "Andersen", "Fischer",
    "O'Brien", "Kaya", "Popescu", "Virtanen", "Lefèvre", "Romano", "Meyer", "Svoboda",
    "Janssens", "Ferreira", "Hansen", "Wagner", "Russo", "Nowak", "Petit", "Yilmaz", "Sousa",
    "Berg", "Marino", "Bauer", "Leroy", "Kovač", "Gallo", "Olsen", "Ricci",
)
# fmt: on
CANCEL_REASONS = (
    "Money is tight at the moment.",
    "I read less news these days.",
    "Moving abroad for work.",
    "I would rather give once a year.",
    "I now support another local outlet.",
    "Too many subscriptions; cutting back.",
    "I disagreed with a recent editorial.",
)
REFUND_REASONS = (
    "Signed up for the wrong amount.",
    "Meant to join as a gift for someone else.",
)
FAILURE_MESSAGES = (
    "Your card has insufficient funds.",
    "Your card was declined.",
    "Your card has expired.",
    "Your card does not support this type of purchase.",
)


@dataclass(frozen=True)
class TierSpec:
    """One demo tier and how often new patrons pick it."""

    slug: str
    name: str
    description: str
    monthly_amount: int
    yearly_amount: int
    popularity: int


TIERS = (
    TierSpec(
        "reader",
        "Reader",
        "Keep our reporting free for everyone, and vote on what we investigate next.",
        500,
        5000,
        55,
    ),
    TierSpec(
        "supporter",
        "Supporter",
        "Everything Reader gives, plus the editors' monthly behind-the-story letter.",
        1000,
        10000,
        30,
    ),
    TierSpec(
        "champion",
        "Champion",
        "Everything Supporter gives, plus an invitation to our yearly newsroom open evening.",
        2500,
        25000,
        15,
    ),
)


class Fate(enum.Enum):
    """How a demo subscription's story goes, mirroring what Stripe would report."""

    ACTIVE = "active"
    ACTIVE_PARTLY_REFUNDED = "active, one payment partly refunded"
    ENDING = "active, cancels at period end"
    PAST_DUE = "past due: the latest renewal failed"
    CANCELED = "canceled at the end of a period"
    CANCELED_REFUNDED = "canceled at once, last payment refunded"
    CANCELED_UNPAID = "canceled after a renewal kept failing"


# Dealt from a shuffled deck, so even a small demo shows every fate in believable proportions.
FATE_DECK: tuple[tuple[Fate, int], ...] = (
    (Fate.ACTIVE, 71),
    (Fate.ACTIVE_PARTLY_REFUNDED, 1),
    (Fate.ENDING, 2),
    (Fate.PAST_DUE, 4),
    (Fate.CANCELED, 15),
    (Fate.CANCELED_REFUNDED, 1),
    (Fate.CANCELED_UNPAID, 6),
)

# The closed poll's ballots follow this cycle of option indexes, so its first option (the
# topic that was published) leads after any number of ballots: 50%, 30% and 20% in the end.
CLOSED_POLL_PATTERN = (0, 0, 1, 2, 0, 1, 0, 2, 1, 0)


@dataclass(frozen=True)
class PollPlan:
    """What the member chunks need to know to cast ballots in one poll."""

    poll_id: int
    option_ids: tuple[int, ...]
    opens_at: dt.datetime
    closes_at: dt.datetime
    max_choices: int


def billing_boundaries(
    start: dt.datetime, interval: Interval, now: dt.datetime
) -> list[dt.datetime]:
    """Every period start up to ``now``, then the end of the current period."""
    step = 1 if interval is Interval.MONTH else 12
    boundaries = [start]
    while boundaries[-1] <= now:
        boundaries.append(add_months(start, step * len(boundaries)))
    return boundaries


def round_up_nicely(value: int) -> int:
    """The smallest round figure (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) >= value."""
    if value <= 1:
        return 1
    power = 1
    while power * 10 < value:
        power *= 10
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * power >= value:
            return int(step * power)
    raise AssertionError("unreachable: 10 * power >= value")


def insert_rows(
    model: type[Base], rows: Sequence[Row], *, returning_ids: bool = False
) -> Sequence[int]:
    """Insert plain dicts in one executemany; with ``returning_ids``, their new ids in row order.

    A Core INSERT rather than the ORM's bulk one, which leaves out None values (so rows that
    differ in which values are None split into many small statements) and takes about half as
    long again per row. Every row must have the same keys.
    """
    table = model.__table__
    assert isinstance(table, sa.Table)
    statement = sa.insert(table)
    if not returning_ids:
        db.session.execute(statement, rows)
        return []
    returning = statement.returning(table.c.id, sort_by_parameter_order=True)
    return db.session.scalars(returning, rows).all()


def _ascii(text: str) -> str:
    """Lower-case letters only, accents dropped: the part of a name that goes into an address."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed.lower() if "a" <= c <= "z")


class DemoSeeder:
    """Builds the demo in the current transaction; the command commits."""

    def __init__(
        self,
        *,
        members: int,
        seed: int,
        now: dt.datetime,
        history_months: int,
    ) -> None:
        self.member_total = members
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = now.replace(microsecond=0)
        self.history_months = history_months
        self.history_start = add_months(self.now, -history_months)
        self.counts: Counter[str] = Counter()
        self.tier_ids: list[int] = []
        self.tier_specs: list[TierSpec] = []
        self.fates: list[Fate] = []
        self.member_number = 0
        self.subscription_number = 0
        self.invoice_number = 0
        self.closed_ballots = 0
        self.proposer_ids: list[int] = []

    # -- small random helpers -----------------------------------------------------------------

    def _between(self, earliest: dt.datetime, latest: dt.datetime) -> dt.datetime:
        """A random whole second in [earliest, latest]."""
        span = int((latest - earliest).total_seconds())
        return earliest + dt.timedelta(seconds=self.rng.randint(0, max(span, 0)))

    def _deal_fate(self) -> Fate:
        if not self.fates:
            self.fates = [fate for fate, share in FATE_DECK for _ in range(share)]
            self.rng.shuffle(self.fates)
        return self.fates.pop()

    # -- the fixed part: staff, tiers, topics, polls --------------------------------------------

    def run(self) -> None:
        """Write the whole demo (flushed, not committed)."""
        admin, editor = self._add_staff()
        self._add_tiers()
        closed, open_, topics = self._add_topics_and_polls(admin, editor)
        for first in range(0, self.member_total, CHUNK_SIZE):
            size = min(CHUNK_SIZE, self.member_total - first)
            self._add_member_chunk(size, closed, open_)
        self._add_proposals(topics, editor)
        closed_poll = db.session.get(Poll, closed.poll_id)
        assert closed_poll is not None  # added above, in this transaction
        closed_poll.eligible_count = self.counts["closed poll eligible"]
        db.session.flush()
        ballots.recount_ballots()  # the ballots went in as plain rows
        self._add_goals()
        record_action(
            "demo.seeded",
            actor_id=None,
            details={"members": self.member_total, "seed": self.seed},
        )
        db.session.flush()

    def _add_staff(self) -> tuple[Member, Member]:
        joined = add_months(self.history_start, -1)
        admin = Member(
            email=ADMIN_EMAIL,
            display_name="Demo Admin",
            role=Role.ADMIN,
            email_verified_at=joined,
            created_at=joined,
        )
        editor = Member(
            email=EDITOR_EMAIL,
            display_name="Demo Editor",
            role=Role.STAFF,
            email_verified_at=joined,
            created_at=joined,
        )
        db.session.add_all([admin, editor])
        db.session.flush()
        self.counts["staff"] = 2
        return admin, editor

    def _add_tiers(self) -> None:
        created = add_months(self.history_start, -1)
        for position, spec in enumerate(TIERS):
            tier = Tier(
                slug=spec.slug,
                name=spec.name,
                description=spec.description,
                monthly_amount=spec.monthly_amount,
                yearly_amount=spec.yearly_amount,
                currency=CURRENCY,
                position=position,
                created_at=created,
            )
            db.session.add(tier)
            db.session.flush()
            self.tier_ids.append(tier.id)
            self.tier_specs.append(spec)
        self.counts["tiers"] = len(TIERS)

    def _topic(self, title: str, pitch: str, status: TopicStatus, **fields: Any) -> Topic:
        topic = Topic(title=title, pitch=pitch, status=status, **fields)
        db.session.add(topic)
        self.counts["topics"] += 1
        return topic

    def _add_topics_and_polls(
        self, admin: Member, editor: Member
    ) -> tuple[PollPlan, PollPlan, dict[str, Topic]]:
        now = self.now
        closed_opens = now - dt.timedelta(days=80)
        closed_closes = now - dt.timedelta(days=66)
        reviewed = closed_opens - dt.timedelta(days=10)
        created = closed_opens - dt.timedelta(days=30)
        shortlisted: dict[str, Any] = {
            "created_at": created,
            "reviewed_by_id": editor.id,
            "reviewed_at": reviewed,
        }
        published_on = (closed_closes + dt.timedelta(days=45)).date()
        topics = {
            "shops": self._topic(
                "Who owns the empty shops on the high street?",
                "A third of the ground-floor units on the high street have stood empty for over "
                "a year. Who owns them, and what are they waiting for?",
                TopicStatus.PUBLISHED,
                article_url=f"{ARTICLE_BASE_URL}/investigations/who-owns-the-empty-shops",
                published_on=published_on,
                **shortlisted,
            ),
            "gp": self._topic(
                "How long do patients really wait for a GP appointment?",
                "Readers tell us three weeks is normal now. We want the figures, practice by "
                "practice, and the reasons behind them.",
                TopicStatus.SHORTLISTED,
                **shortlisted,
            ),
            "tram": self._topic(
                "Is the new tram line over budget?",
                "The tram extension was costed five years ago. What will it cost now?",
                TopicStatus.DECLINED,
                status_reason=(
                    "The city's audit office publishes its own review of the tram budget in "
                    "a few months. We will report on that review rather than duplicate it now."
                ),
                **shortlisted,
            ),
            "river": self._topic(
                "Where does the pollution in the river come from?",
                "Fish kills two summers in a row. We want to test the water upstream and "
                "downstream of every outflow.",
                TopicStatus.SHORTLISTED,
                **shortlisted,
            ),
            "brewery": self._topic(
                "What happened to the affordable homes promised at the old brewery?",
                "Planning permission came with 120 affordable flats. The first buildings are "
                "finished and none of them are affordable.",
                TopicStatus.SHORTLISTED,
                **shortlisted,
            ),
            "buses": self._topic(
                "Why are school bus routes being cut?",
                "Four rural routes disappear next term. Who decided, and what happens to the "
                "children who relied on them?",
                TopicStatus.SHORTLISTED,
                **shortlisted,
            ),
            "stadium": self._topic(
                "Who pays for the road works around the new stadium?",
                "The club promised to pay; the council's budget says otherwise.",
                TopicStatus.SHORTLISTED,
                **shortlisted,
            ),
            "bridges": self._topic(
                "How safe are the city's bridges?",
                "Inspection reports are public but nobody reads them. We will.",
                TopicStatus.SHORTLISTED,
                **shortlisted,
            ),
            "night_buses": self._topic(
                "Do night buses serve the people who work night shifts?",
                "Hospital, cleaning and warehouse staff start and finish when the buses stop.",
                TopicStatus.SHORTLISTED,
                **shortlisted,
            ),
            "hospital": self._topic(
                "The people who keep the hospital running at night",
                "A portrait series: porters, cleaners, nurses and cooks on the night shift.",
                TopicStatus.COMMISSIONED,
                **shortlisted,
            ),
        }
        db.session.flush()

        closed = self._poll(
            "Our first patron vote: which investigation comes first?",
            "One vote per patron. The topic with the most votes becomes our next investigation.",
            [topics["shops"], topics["gp"], topics["tram"]],
            state=PollState.CLOSED,
            opens_at=closed_opens,
            closes_at=closed_closes,
            closed_at=closed_closes,
            max_choices=1,
            results_visibility=ResultsVisibility.AFTER_CLOSING,
            created_by_id=admin.id,
            created_at=closed_opens - dt.timedelta(days=3),
        )
        open_opens = now - dt.timedelta(days=5)
        open_ = self._poll(
            "What should our reporters investigate next?",
            "Pick up to two topics. The one with the most votes becomes our next investigation.",
            [topics["gp"], topics["river"], topics["brewery"], topics["buses"]],
            state=PollState.OPEN,
            opens_at=open_opens,
            closes_at=now + dt.timedelta(days=9),
            max_choices=2,
            results_visibility=ResultsVisibility.AFTER_VOTING,
            created_by_id=admin.id,
            created_at=open_opens - dt.timedelta(days=2),
        )
        self._poll(
            "Transport special: which question should we answer?",
            "A draft for next month's vote; patrons cannot see it yet.",
            [topics["stadium"], topics["bridges"], topics["night_buses"]],
            state=PollState.DRAFT,
            opens_at=now + dt.timedelta(days=20),
            closes_at=now + dt.timedelta(days=34),
            max_choices=1,
            results_visibility=ResultsVisibility.AFTER_VOTING,
            created_by_id=editor.id,
            created_at=now - dt.timedelta(days=1),
        )
        return closed, open_, topics

    def _poll(
        self, question: str, description: str, topics: Sequence[Topic], **fields: Any
    ) -> PollPlan:
        poll = Poll(
            question=question,
            description=description,
            weighting=Weighting.EQUAL,
            options=[PollOption(topic=topic, position=i) for i, topic in enumerate(topics)],
            **fields,
        )
        db.session.add(poll)
        db.session.flush()
        self.counts["polls"] += 1
        return PollPlan(
            poll_id=poll.id,
            option_ids=tuple(option.id for option in poll.options),
            opens_at=fields["opens_at"],
            closes_at=fields["closes_at"],
            max_choices=fields["max_choices"],
        )

    # -- the bulk part: members with their subscriptions, payments and ballots ---------------------

    def _add_member_chunk(self, size: int, closed: PollPlan, open_: PollPlan) -> None:
        members: list[Row] = []
        plans: list[tuple[Row, list[Row]] | None] = []
        for _ in range(size):
            self.member_number += 1
            plan = self._plan_subscription() if self.rng.random() < SUBSCRIBER_SHARE else None
            if plan is None:
                joined = self._between(self.history_start, self.now)
            elif self.rng.random() < 0.5:
                joined = plan[0]["started_at"] - dt.timedelta(minutes=self.rng.randint(2, 30))
            else:
                joined = plan[0]["started_at"] - dt.timedelta(
                    days=self.rng.randint(1, 60), seconds=self.rng.randint(0, 86_399)
                )
            members.append(self._member_row(joined))
            plans.append(plan)
        member_ids = insert_rows(Member, members, returning_ids=True)
        self.counts["members"] += len(member_ids)

        customers: list[Row] = []
        subscriptions: list[Row] = []
        payment_lists: list[list[Row]] = []
        for member_id, plan in zip(member_ids, plans, strict=True):
            if plan is None:
                continue
            subscription, payments = plan
            # Named after the member as the demo checkout names its customers, so one started
            # from the demo later finds this row rather than colliding with it.
            customer_id = f"cus_demo_{member_id}"
            subscription.update(member_id=member_id, stripe_customer_id=customer_id)
            customers.append(
                {
                    "member_id": member_id,
                    "stripe_customer_id": customer_id,
                    "created_at": subscription["started_at"],
                }
            )
            subscriptions.append(subscription)
            payment_lists.append(payments)
        if not subscriptions:
            return
        insert_rows(Customer, customers)
        subscription_ids = insert_rows(Subscription, subscriptions, returning_ids=True)
        payments_chunk: list[Row] = []
        for subscription_id, subscription, payments in zip(
            subscription_ids, subscriptions, payment_lists, strict=True
        ):
            for payment in payments:
                payment["member_id"] = subscription["member_id"]
                payment["subscription_id"] = subscription_id
            payments_chunk.extend(payments)
        insert_rows(Payment, payments_chunk)
        self._count(subscriptions, payments_chunk)
        self._remember_proposers(subscriptions)
        self._add_ballots(subscriptions, closed, open_)

    def _member_row(self, joined: dt.datetime) -> Row:
        first = self.rng.choice(FIRST_NAMES)
        last = self.rng.choice(LAST_NAMES)
        style = self.rng.random()
        if style < 0.6:
            stem = f"{_ascii(first)}.{_ascii(last)}"
        elif style < 0.85:
            stem = f"{_ascii(first)[0]}{_ascii(last)}"
        else:
            stem = _ascii(first)
        # The stem has no digits, so the member's own number at its end makes the address unique.
        email = f"{stem}{self.member_number}@{self.rng.choice(EMAIL_DOMAINS)}"
        return {
            "email": email,
            "display_name": "" if self.rng.random() < 0.08 else f"{first} {last}",
            "role": Role.MEMBER,
            "email_verified_at": joined,
            "session_version": 1,
            "locale": None,
            "created_at": joined,
        }

    def _pick_price(self, interval: Interval) -> tuple[int | None, int]:
        """A tier (id, its price) or, now and then, a custom amount (None, amount)."""
        if self.rng.random() < CUSTOM_AMOUNT_SHARE:
            amounts = (
                CUSTOM_MONTHLY_AMOUNTS if interval is Interval.MONTH else CUSTOM_YEARLY_AMOUNTS
            )
            return None, self.rng.choice(amounts)
        index = self.rng.choices(
            range(len(self.tier_specs)), weights=[s.popularity for s in self.tier_specs]
        )[0]
        spec = self.tier_specs[index]
        amount = spec.monthly_amount if interval is Interval.MONTH else spec.yearly_amount
        return self.tier_ids[index], amount

    def _plan_subscription(self) -> tuple[Row, list[Row]]:
        """One subscription's row and its payments (one per billing period), ids left to fill."""
        fate = self._deal_fate()
        now = self.now
        interval = Interval.YEAR if self.rng.random() < YEARLY_SHARE else Interval.MONTH
        if fate in (Fate.PAST_DUE, Fate.CANCELED_UNPAID):
            interval = Interval.MONTH
        step = 1 if interval is Interval.MONTH else 12

        if fate is Fate.PAST_DUE:
            # The latest renewal was a few days ago and failed; Stripe is still retrying.
            renewal = now - dt.timedelta(
                days=self.rng.randint(1, 12), seconds=self.rng.randint(0, 86_399)
            )
            start = add_months(renewal, -self.rng.randint(1, self.history_months - 1))
        else:
            latest = now - dt.timedelta(hours=1)
            if fate in (Fate.CANCELED, Fate.CANCELED_REFUNDED):
                latest = add_months(now, -step) - dt.timedelta(days=1)
            elif fate is Fate.CANCELED_UNPAID:
                latest = add_months(now, -1) - RETRY_WINDOW - dt.timedelta(days=8)
            start = self._between(self.history_start, max(latest, self.history_start))
        boundaries = billing_boundaries(start, interval, now)
        invoiced = len(boundaries) - 1  # periods begun so far, each with its invoice

        status = SubscriptionStatus.ACTIVE
        paid = invoiced
        failed_at_index: int | None = None
        refund: tuple[int, int] | None = None  # (payment index, refunded amount)
        period_end = boundaries[invoiced]
        cancel_at_period_end = False
        canceled_at: dt.datetime | None = None
        ended_at: dt.datetime | None = None
        cancel_reason = ""
        tier_id, amount = self._pick_price(interval)

        if fate is Fate.PAST_DUE:
            status = SubscriptionStatus.PAST_DUE
            paid = invoiced - 1
            failed_at_index = invoiced - 1
        elif fate is Fate.CANCELED and invoiced >= 2:
            last = self.rng.randint(1, invoiced - 1)
            status, paid, period_end, ended_at = (
                SubscriptionStatus.CANCELED,
                last,
                boundaries[last],
                boundaries[last],
            )
            canceled_at = max(
                boundaries[last - 1] + dt.timedelta(hours=1),
                ended_at - dt.timedelta(days=self.rng.randint(1, 20)),
            )
            cancel_reason = self.rng.choice(CANCEL_REASONS) if self.rng.random() < 0.7 else ""
        elif fate is Fate.CANCELED_REFUNDED:
            candidates = [i for i in range(invoiced) if boundaries[i] + dt.timedelta(days=8) <= now]
            if candidates:
                last = self.rng.choice(candidates)
                status, paid, period_end = (
                    SubscriptionStatus.CANCELED,
                    last + 1,
                    boundaries[last + 1],
                )
                ended_at = canceled_at = boundaries[last] + dt.timedelta(
                    days=self.rng.randint(1, 7), hours=self.rng.randint(0, 23)
                )
                refund = (last, amount)
                cancel_reason = self.rng.choice(REFUND_REASONS)
        elif fate is Fate.CANCELED_UNPAID:
            candidates = [
                i
                for i in range(1, invoiced)
                if boundaries[i] + RETRY_WINDOW + dt.timedelta(days=4) <= now
            ]
            if candidates:
                failed = self.rng.choice(candidates)
                status, paid, failed_at_index = SubscriptionStatus.CANCELED, failed, failed
                period_end = boundaries[failed + 1]
                ended_at = canceled_at = (
                    boundaries[failed] + RETRY_WINDOW + dt.timedelta(hours=self.rng.randint(0, 72))
                )
        elif fate is Fate.ENDING:
            cancel_at_period_end = True
            canceled_at = self._between(
                max(boundaries[invoiced - 1], now - dt.timedelta(days=20)), now
            )
            cancel_reason = self.rng.choice(CANCEL_REASONS)
        elif fate is Fate.ACTIVE_PARTLY_REFUNDED:
            refund = (self.rng.randrange(invoiced), amount // 2)

        self.subscription_number += 1
        subscription: Row = {
            "tier_id": tier_id,
            "interval": interval,
            "amount": amount,
            "currency": CURRENCY,
            "status": status,
            "stripe_subscription_id": f"sub_demo_{self.subscription_number}",
            "current_period_start": interval.after(period_end, -1),
            "current_period_end": period_end,
            "cancel_at_period_end": cancel_at_period_end,
            "cancel_reason": cancel_reason,
            "started_at": start,
            "canceled_at": canceled_at,
            "ended_at": ended_at,
            "created_at": start,
            "updated_at": ended_at or max(boundaries[invoiced - 1], canceled_at or start),
        }
        payments = [self._payment_row(boundaries[i], amount, i == 0) for i in range(paid)]
        if refund is not None:
            payments[refund[0]]["refunded_amount"] = refund[1]
        if failed_at_index is not None:
            payments.append(self._failed_payment_row(boundaries[failed_at_index], amount))
        return subscription, payments

    def _payment_row(self, period_start: dt.datetime, amount: int, is_first: bool) -> Row:
        self.invoice_number += 1
        # The first invoice is paid at checkout; Stripe finalizes renewals about an hour late.
        delay = self.rng.randint(5, 60) if is_first else self.rng.randint(3_600, 4_200)
        return {
            "kind": PaymentKind.SUBSCRIPTION,
            "stripe_invoice_id": f"in_demo_{self.invoice_number}",
            "amount": amount,
            "currency": CURRENCY,
            "status": PaymentStatus.PAID,
            "refunded_amount": 0,
            "failure_message": "",
            "paid_at": min(period_start + dt.timedelta(seconds=delay), self.now),
            "failed_at": None,
            "created_at": period_start,
        }

    def _failed_payment_row(self, period_start: dt.datetime, amount: int) -> Row:
        row = self._payment_row(period_start, amount, is_first=False)
        row.update(
            status=PaymentStatus.FAILED,
            failure_message=self.rng.choice(FAILURE_MESSAGES),
            paid_at=None,
            failed_at=row["paid_at"],
        )
        return row

    def _count(self, subscriptions: Sequence[Row], payments: Sequence[Row]) -> None:
        for subscription in subscriptions:
            self.counts[f"subscriptions {subscription['status']}"] += 1
            self.counts["ending"] += subscription["cancel_at_period_end"]
        self.counts["subscriptions"] += len(subscriptions)
        self.counts["customers"] += len(subscriptions)
        for payment in payments:
            self.counts[f"payments {payment['status']}"] += 1
            self.counts["refunded"] += payment["refunded_amount"] > 0
        self.counts["payments"] += len(payments)

    def _remember_proposers(self, subscriptions: Sequence[Row]) -> None:
        """Keep a few long-standing active patrons to sign the topic proposals."""
        for subscription in subscriptions:
            if len(self.proposer_ids) >= 8:
                return
            if subscription["status"] is SubscriptionStatus.ACTIVE and subscription[
                "started_at"
            ] < self.now - dt.timedelta(days=120):
                self.proposer_ids.append(subscription["member_id"])

    def _add_ballots(self, subscriptions: Sequence[Row], closed: PollPlan, open_: PollPlan) -> None:
        """Ballots from patrons who were paying while each poll was open, one per poll at most."""
        votes: list[Row] = []
        options: list[list[int]] = []
        polls: list[int] = []
        for subscription in subscriptions:
            started, ended = subscription["started_at"], subscription["ended_at"]
            earliest = max(closed.opens_at, started)
            latest = min(closed.closes_at, ended or closed.closes_at)
            could_vote = earliest < latest
            self.counts["closed poll eligible"] += could_vote
            if could_vote and self.rng.random() < CLOSED_POLL_TURNOUT:
                index = CLOSED_POLL_PATTERN[self.closed_ballots % len(CLOSED_POLL_PATTERN)]
                self.closed_ballots += 1
                votes.append(self._vote_row(closed, subscription, earliest, latest))
                options.append([closed.option_ids[index]])
                polls.append(closed.poll_id)
            if (
                subscription["status"] is SubscriptionStatus.ACTIVE
                and self.rng.random() < OPEN_POLL_TURNOUT
            ):
                earliest = max(open_.opens_at, started)
                votes.append(self._vote_row(open_, subscription, earliest, self.now))
                options.append(self._open_poll_choices(open_))
                polls.append(open_.poll_id)
        if not votes:
            return
        vote_ids = insert_rows(Vote, votes, returning_ids=True)
        choices = [
            {"vote_id": vote_id, "poll_id": poll_id, "option_id": option_id}
            for vote_id, poll_id, chosen in zip(vote_ids, polls, options, strict=True)
            for option_id in chosen
        ]
        insert_rows(VoteChoice, choices)
        self.counts["votes"] += len(vote_ids)
        self.counts["open poll votes"] += polls.count(open_.poll_id)

    def _vote_row(
        self, poll: PollPlan, subscription: Row, earliest: dt.datetime, latest: dt.datetime
    ) -> Row:
        cast = self._between(earliest, latest)
        return {
            "poll_id": poll.poll_id,
            "member_id": subscription["member_id"],
            "created_at": cast,
            "updated_at": cast,
        }

    def _open_poll_choices(self, poll: PollPlan) -> list[int]:
        weights = [35, 25, 25, 15][: len(poll.option_ids)]
        first = self.rng.choices(range(len(poll.option_ids)), weights=weights)[0]
        chosen = [first]
        if poll.max_choices > 1 and self.rng.random() < 0.4:
            rest = [i for i in range(len(poll.option_ids)) if i != first]
            chosen.append(self.rng.choices(rest, weights=[weights[i] for i in rest])[0])
        return [poll.option_ids[i] for i in chosen]

    # -- the rest: proposals from patrons, goals sized to what was generated ----------------------

    def _add_proposals(self, topics: dict[str, Topic], editor: Member) -> None:
        proposers: list[int | None] = list(self.proposer_ids) or [None]
        # Some shortlisted topics began as a patron's proposal.
        topics["shops"].proposed_by_id = proposers[0]
        topics["river"].proposed_by_id = proposers[1 % len(proposers)]
        ideas = (
            (
                2,
                "Noise from the airport's new flight paths",
                "Since the spring, planes turn over our neighbourhood at six in the morning. "
                "Who approved the new routes?",
                "https://www.example.com/airport-consultation",
            ),
            (
                6,
                "What students pay for a room",
                "Private student halls keep opening. Are they the reason rents near the campus "
                "went up by a third?",
                None,
            ),
            (
                11,
                "Why does the central library close on Sundays?",
                "It is the one day many families could go.",
                None,
            ),
        )
        for who, (days_ago, title, pitch, link) in enumerate(ideas):
            self._topic(
                title,
                pitch,
                TopicStatus.PROPOSED,
                link_url=link,
                proposed_by_id=proposers[(who + 2) % len(proposers)],
                created_at=self.now - dt.timedelta(days=days_ago, hours=self.rng.randint(0, 23)),
            )
        self._topic(
            "The best pizza in town",
            "Someone has to settle it.",
            TopicStatus.REJECTED,
            proposed_by_id=proposers[-1],
            status_reason=(
                "A fun idea, thank you! We keep patron votes for public-interest reporting, "
                "so this one goes to our weekend team instead."
            ),
            reviewed_by_id=editor.id,
            reviewed_at=self.now - dt.timedelta(days=20),
            created_at=self.now - dt.timedelta(days=23),
        )
        db.session.flush()

    def _add_goals(self) -> None:
        """Two goals a little beyond what the demo patrons give, so readers see progress."""
        revenue = billing_figures.monthly_revenue(CURRENCY)
        patrons = billing_figures.patron_count()
        created = self.history_start
        db.session.add_all(
            [
                FundingGoal(
                    title="Fund a second investigative reporter",
                    description=(
                        "With this much support every month we can hire a second full-time "
                        "reporter for the investigations desk."
                    ),
                    measure=GoalMeasure.MONTHLY_REVENUE,
                    target=round_up_nicely(revenue * 3 // 200) * 100,  # 1.5 times, in whole euros
                    currency=CURRENCY,
                    position=0,
                    created_at=created,
                ),
                FundingGoal(
                    title="A patron on every street",
                    description=(
                        "The more readers chip in, the less we depend on advertisers. Help us "
                        "reach this many patrons by the end of the year."
                    ),
                    measure=GoalMeasure.PATRONS,
                    target=round_up_nicely(patrons * 5 // 4),
                    position=1,
                    created_at=created,
                ),
            ]
        )
        self.counts["goals"] = 2

    def summary(self) -> list[str]:
        """A few lines saying what was written."""
        c = self.counts
        return [
            f"  {c['members'] + c['staff']:,} members ({c['members']:,} readers, 1 admin, 1 staff)",
            f"  {c['tiers']} tiers in {CURRENCY}, {c['goals']} funding goals",
            f"  {c['subscriptions']:,} subscriptions: {c['subscriptions active']:,} active "
            f"({c['ending']:,} ending at period end), {c['subscriptions past_due']:,} past due, "
            f"{c['subscriptions canceled']:,} canceled",
            f"  {c['payments']:,} payments: {c['payments paid']:,} paid "
            f"({c['refunded']:,} refunded), {c['payments failed']:,} failed",
            f"  {c['topics']} topics, {c['polls']} polls (closed, open, draft), "
            f"{c['votes']:,} votes ({c['open poll votes']:,} in the open poll)",
        ]


def ensure_empty() -> None:
    """Refuse unless the schema exists and holds no members and no tiers.

    :raises click.ClickException: no schema yet, or data already there.
    """
    if not sa.inspect(db.session.connection()).has_table(Member.__tablename__):
        raise click.ClickException(
            "The database has no tables yet: run `flask --app supporters db upgrade` first."
        )
    has_members = db.session.scalar(sa.select(Member.id).limit(1)) is not None
    has_tiers = db.session.scalar(sa.select(Tier.id).limit(1)) is not None
    if has_members or has_tiers:
        raise click.ClickException(
            "This database already holds members or tiers; seed-demo only fills an empty "
            "database, so nothing was written. Point SUPPORTERS_DATABASE_URL (or "
            "SUPPORTERS_INSTANCE_PATH) at a new database and run `flask --app supporters db "
            "upgrade` there first."
        )


def seed(*, members: int, seed: int, history_months: int) -> list[str]:
    """Write the demo into an empty database (flushed, not committed); a summary of it.

    :raises click.ClickException: no schema yet, or data already there.
    """
    ensure_empty()
    seeder = DemoSeeder(members=members, seed=seed, now=utcnow(), history_months=history_months)
    seeder.run()
    # The bulk inserts bypass the ORM, so the staff report tables are rebuilt from the rows
    # just written, in the same transaction.
    rebuild()
    return seeder.summary()
