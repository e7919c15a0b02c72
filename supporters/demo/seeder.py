"""The demo seeder: believable demo data for a first look (``flask --app supporters seed-demo``).

Everything is relative to the moment the command runs: eighteen months (``--history-months``)
of members joining, paying, lapsing and leaving, a poll that closed and became an article, and
a poll open now. Each feature writes its own tables through its services: accounts through
``members``, tiers and goals as an admin makes them, subscriptions and payments through
``billing``, topics, polls and ballots through ``voting``. The bulk (members with their
subscriptions, payments and ballots) goes through each feature's import, a chunk of members at
a time, so a million members fit in bounded memory; the whole run is one transaction, which
the command commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import click
import sqlalchemy as sa

from supporters import mail
from supporters.audit import record_action
from supporters.billing import stripe_gateway as gateway
from supporters.billing.imports import ImportedSubscription
from supporters.billing.models import Tier
from supporters.db import utcnow
from supporters.demo.billing import CURRENCY, Billing
from supporters.demo.members import Accounts
from supporters.demo.story import Story
from supporters.demo.subscriptions import Plan, Subscriptions
from supporters.demo.voting import Voting
from supporters.extensions import db
from supporters.members.imports import ImportedMember
from supporters.members.models import Member
from supporters.staff.rebuild import rebuild

# Members generated and written together: bounds memory at any total.
CHUNK_SIZE = 5_000


class DemoSeeder:
    """Builds the demo in the current transaction; the command commits."""

    def __init__(self, *, members: int, seed: int, now: dt.datetime, history_months: int) -> None:
        self.member_total = members
        self.seed = seed
        self.story = Story(seed=seed, now=now, history_months=history_months)
        self.accounts = Accounts(self.story)
        self.billing = Billing(self.story)

    def run(self) -> None:
        """Write the whole demo (flushed, not committed)."""
        admin, editor = self.accounts.add_staff()
        self.billing.add_tiers(admin)
        patrons = Subscriptions(self.story, self.billing.tiers)
        voting = Voting(self.story, admin=admin, editor=editor)
        sizes = [
            min(CHUNK_SIZE, self.member_total - first)
            for first in range(0, self.member_total, CHUNK_SIZE)
        ]
        for index, size in enumerate(sizes or [0]):
            subscriptions = self._add_members(size, patrons)
            voting.remember_proposers(subscriptions)
            if index == 0:
                # Some of the first topics were proposed by patrons of the first chunk.
                voting.open_polls()
            voting.add_ballots(subscriptions)
        voting.close_first_poll()
        voting.add_proposals()
        self.billing.add_goals(admin)
        record_action(
            "demo.seeded",
            actor_id=None,
            details={"members": self.member_total, "seed": self.seed},
        )
        db.session.flush()

    def _add_members(self, size: int, patrons: Subscriptions) -> Sequence[ImportedSubscription]:
        """A chunk of readers, most of them patrons; the subscriptions written."""
        readers: list[ImportedMember] = []
        plans: list[Plan | None] = []
        for _ in range(size):
            plan = patrons.plan()
            readers.append(self.accounts.reader(plan.started_at if plan else None))
            plans.append(plan)
        member_ids = self.accounts.add_readers(readers)
        return patrons.add(
            (member_id, reader, plan)
            for member_id, reader, plan in zip(member_ids, readers, plans, strict=True)
            if plan is not None
        )

    def summary(self) -> list[str]:
        """A few lines saying what was written."""
        c = self.story.counts
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
    """Refuse unless the schema exists and holds no members and no tiers, and no Stripe
    account is configured.

    :raises click.ClickException: a Stripe key is set, no schema yet, or data already there.
    """
    if gateway.is_configured():
        # The demo's patrons pay through the demo checkout: with a key, its tiers would be made
        # in the Stripe account while its subscriptions exist nowhere but here.
        raise click.ClickException(
            "seed-demo fills a site that uses the demo checkout, and SUPPORTERS_STRIPE_SECRET_KEY "
            "is set: nothing was written. Seed a database of its own, without the Stripe keys."
        )
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

    :raises click.ClickException: a Stripe key is set, no schema yet, or data already there.
    """
    ensure_empty()
    seeder = DemoSeeder(members=members, seed=seed, now=utcnow(), history_months=history_months)
    # Months of history that happened elsewhere: nobody is to be emailed about it.
    with mail.silenced():
        seeder.run()
    # The imports write many rows a statement, which the report tables' listeners cannot
    # follow: the tables are rebuilt from the rows just written, in the same transaction.
    rebuild()
    return seeder.summary()
