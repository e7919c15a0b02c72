"""The demo's votes: topics shortlisted months ago, a poll that closed and became an article, a
poll open now with patrons' ballots, a draft for next month, and fresh proposals.

The story is told through voting's own services at the moments it happened
(``clock.replaying``), by the demo's admin and editor, so every state it reaches is one the
rules allow. Ballots go in through ``ballots.import_ballots``, a chunk of members at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from supporters.audit import Actor
from supporters.billing.imports import ImportedSubscription
from supporters.billing.models import SubscriptionStatus
from supporters.demo.story import Story
from supporters.extensions import db
from supporters.members.models import Member
from supporters.voting import clock, polls, topics
from supporters.voting.ballots import ImportedBallot, import_ballots
from supporters.voting.models import Poll, ResultsVisibility, Topic, Weighting

ARTICLE_BASE_URL = "https://news.example.org"
CLOSED_POLL_TURNOUT = 0.4
OPEN_POLL_TURNOUT = 0.3
# The closed poll's ballots follow this cycle of option indexes, so its first option (the
# topic that was published) leads after any number of ballots: 50%, 30% and 20% in the end.
CLOSED_POLL_PATTERN = (0, 0, 1, 2, 0, 1, 0, 2, 1, 0)
# Patrons whose proposals some topics began as: long-standing, active ones.
PROPOSERS = 8
PROPOSER_SINCE = dt.timedelta(days=120)

SHORTLIST = {
    "shops": (
        "Who owns the empty shops on the high street?",
        "A third of the ground-floor units on the high street have stood empty for over a year. "
        "Who owns them, and what are they waiting for?",
    ),
    "gp": (
        "How long do patients really wait for a GP appointment?",
        "Readers tell us three weeks is normal now. We want the figures, practice by practice, "
        "and the reasons behind them.",
    ),
    "tram": (
        "Is the new tram line over budget?",
        "The tram extension was costed five years ago. What will it cost now?",
    ),
    "river": (
        "Where does the pollution in the river come from?",
        "Fish kills two summers in a row. We want to test the water upstream and downstream of "
        "every outflow.",
    ),
    "brewery": (
        "What happened to the affordable homes promised at the old brewery?",
        "Planning permission came with 120 affordable flats. The first buildings are finished "
        "and none of them are affordable.",
    ),
    "buses": (
        "Why are school bus routes being cut?",
        "Four rural routes disappear next term. Who decided, and what happens to the children "
        "who relied on them?",
    ),
    "stadium": (
        "Who pays for the road works around the new stadium?",
        "The club promised to pay; the council's budget says otherwise.",
    ),
    "bridges": (
        "How safe are the city's bridges?",
        "Inspection reports are public but nobody reads them. We will.",
    ),
    "night_buses": (
        "Do night buses serve the people who work night shifts?",
        "Hospital, cleaning and warehouse staff start and finish when the buses stop.",
    ),
    "hospital": (
        "The people who keep the hospital running at night",
        "A portrait series: porters, cleaners, nurses and cooks on the night shift.",
    ),
}
# Shortlisted topics that began as a patron's proposal (when the demo has patrons).
PROPOSED_BY_PATRONS = ("shops", "river")
TRAM_DECLINED = (
    "The city's audit office publishes its own review of the tram budget in a few months. We "
    "will report on that review rather than duplicate it now."
)
# (days ago, title, pitch, link): proposals waiting for review now.
RECENT_PROPOSALS = (
    (
        2,
        "Noise from the airport's new flight paths",
        "Since the spring, planes turn over our neighbourhood at six in the morning. Who "
        "approved the new routes?",
        "https://www.example.com/airport-consultation",
    ),
    (
        6,
        "What students pay for a room",
        "Private student halls keep opening. Are they the reason rents near the campus went up "
        "by a third?",
        None,
    ),
    (
        11,
        "Why does the central library close on Sundays?",
        "It is the one day many families could go.",
        None,
    ),
)
PIZZA = ("The best pizza in town", "Someone has to settle it.")
PIZZA_REJECTED = (
    "A fun idea, thank you! We keep patron votes for public-interest reporting, so this one "
    "goes to our weekend team instead."
)


@dataclass(frozen=True)
class PollPlan:
    """What the member chunks need to know to cast ballots in one poll."""

    poll_id: int
    option_ids: tuple[int, ...]
    opens_at: dt.datetime
    closes_at: dt.datetime  # when voting ended, or ends
    max_choices: int


class Voting:
    """Tells the demo's voting story, as its admin (polls) and editor (topics)."""

    def __init__(self, story: Story, *, admin: Actor, editor: Actor) -> None:
        self.story = story
        self.admin = admin
        self.editor = editor
        now = story.now
        self.closed_opens_at = now - dt.timedelta(days=80)
        # Staff close the first poll as it ends (a minute early: a poll past its closing time
        # is closed by the clock instead, and stores no count of who could vote).
        self.closed_at = now - dt.timedelta(days=66)
        self.open_opens_at = now - dt.timedelta(days=5)
        self.proposer_ids: list[int] = []
        self.topics: dict[str, Topic] = {}
        self.closed: PollPlan | None = None
        self.open: PollPlan | None = None
        self.closed_ballots = 0

    def remember_proposers(self, subscriptions: Sequence[ImportedSubscription]) -> None:
        """Keep a few long-standing active patrons to sign the topic proposals."""
        since = self.story.now - PROPOSER_SINCE
        for subscription in subscriptions:
            if len(self.proposer_ids) >= PROPOSERS:
                return
            if subscription.status is SubscriptionStatus.ACTIVE and subscription.started_at < since:
                self.proposer_ids.append(subscription.member_id)

    def _proposer(self, index: int) -> Member:
        member = db.session.get(Member, self.proposer_ids[index % len(self.proposer_ids)])
        assert member is not None  # written by this demo
        return member

    def _propose(
        self, at: dt.datetime, who: int, title: str, pitch: str, link: str | None
    ) -> Topic:
        with clock.replaying(at):
            topic = topics.propose_topic(
                self._proposer(who), title=title, pitch=pitch, link_url=link
            )
        self.story.counts["topics"] += 1
        return topic

    def open_polls(self) -> None:
        """The shortlist, the first poll (published, open until it is closed), the poll open
        now and next month's draft."""
        created = self.closed_opens_at - dt.timedelta(days=30)
        reviewed = self.closed_opens_at - dt.timedelta(days=10)
        for key, (title, pitch) in SHORTLIST.items():
            if key in PROPOSED_BY_PATRONS and self.proposer_ids:
                who = PROPOSED_BY_PATRONS.index(key)
                topic = self._propose(created, who, title, pitch, None)
                with clock.replaying(reviewed):
                    topics.approve_topic(topic, self.editor)
            else:
                with clock.replaying(created):
                    topic = topics.create_topic(title, pitch, self.editor)
                self.story.counts["topics"] += 1
            self.topics[key] = topic
        with clock.replaying(reviewed):
            topics.commission_topic(self.topics["hospital"], self.editor)

        first = self._draft(
            "Our first patron vote: which investigation comes first?",
            "One vote per patron. The topic with the most votes becomes our next investigation.",
            ("shops", "gp", "tram"),
            opens_at=self.closed_opens_at,
            closes_at=self.closed_at + dt.timedelta(minutes=1),
            max_choices=1,
            results_visibility=ResultsVisibility.AFTER_CLOSING,
            by=self.admin,
            at=self.closed_opens_at - dt.timedelta(days=3),
        )
        self.closed = self._publish(first, self.admin, voting_ends_at=self.closed_at)
        current = self._draft(
            "What should our reporters investigate next?",
            "Pick up to two topics. The one with the most votes becomes our next investigation.",
            ("gp", "river", "brewery", "buses"),
            opens_at=self.open_opens_at,
            closes_at=self.story.now + dt.timedelta(days=9),
            max_choices=2,
            results_visibility=ResultsVisibility.AFTER_VOTING,
            by=self.admin,
            at=self.open_opens_at - dt.timedelta(days=2),
        )
        self.open = self._publish(current, self.admin, voting_ends_at=self.story.now)
        self._draft(
            "Transport special: which question should we answer?",
            "A draft for next month's vote; patrons cannot see it yet.",
            ("stadium", "bridges", "night_buses"),
            opens_at=self.story.now + dt.timedelta(days=20),
            closes_at=self.story.now + dt.timedelta(days=34),
            max_choices=1,
            results_visibility=ResultsVisibility.AFTER_VOTING,
            by=self.editor,
            at=self.story.now - dt.timedelta(days=1),
        )

    def _draft(
        self,
        question: str,
        description: str,
        options: Sequence[str],
        *,
        opens_at: dt.datetime,
        closes_at: dt.datetime,
        max_choices: int,
        results_visibility: ResultsVisibility,
        by: Actor,
        at: dt.datetime,
    ) -> Poll:
        """A draft poll offering the shortlisted topics named, as staff made it ``at``."""
        settings = polls.PollSettings(
            question=question,
            description=description,
            opens_at=opens_at,
            closes_at=closes_at,
            max_choices=max_choices,
            results_visibility=results_visibility,
            weighting=Weighting.EQUAL,
            weight_cap_percent=None,
            is_restricted_to_tiers=False,
            tier_rules={},
        )
        with clock.replaying(at):
            poll = polls.create_poll(settings, by)
            for key in options:
                polls.add_option(poll, self.topics[key], by)
        self.story.counts["polls"] += 1
        return poll

    def _publish(self, poll: Poll, by: Actor, *, voting_ends_at: dt.datetime) -> PollPlan:
        """Publish a draft as it opens; what its ballots need to know."""
        assert poll.opens_at is not None  # every demo poll has its opening time
        with clock.replaying(poll.opens_at):
            polls.publish_poll(poll, by)
        return PollPlan(
            poll_id=poll.id,
            option_ids=tuple(option.id for option in poll.options),
            opens_at=poll.opens_at,
            closes_at=voting_ends_at,
            max_choices=poll.max_choices,
        )

    def add_ballots(self, subscriptions: Sequence[ImportedSubscription]) -> None:
        """Ballots from patrons who were paying while each poll was open, one per poll at most."""
        closed, open_ = self.closed, self.open
        assert closed is not None and open_ is not None  # open_polls came first
        rng = self.story.rng
        ballots: list[ImportedBallot] = []
        for subscription in subscriptions:
            started, ended = subscription.started_at, subscription.ended_at
            earliest = max(closed.opens_at, started)
            latest = min(closed.closes_at, ended or closed.closes_at)
            if earliest < latest and rng.random() < CLOSED_POLL_TURNOUT:
                index = CLOSED_POLL_PATTERN[self.closed_ballots % len(CLOSED_POLL_PATTERN)]
                self.closed_ballots += 1
                ballots.append(
                    ImportedBallot(
                        closed.poll_id,
                        subscription.member_id,
                        (closed.option_ids[index],),
                        self.story.between(earliest, latest),
                    )
                )
            if (
                subscription.status is SubscriptionStatus.ACTIVE
                and rng.random() < OPEN_POLL_TURNOUT
            ):
                earliest = max(open_.opens_at, started)
                ballots.append(
                    ImportedBallot(
                        open_.poll_id,
                        subscription.member_id,
                        self._open_poll_choices(open_),
                        self.story.between(earliest, open_.closes_at),
                    )
                )
        import_ballots(ballots)
        self.story.counts["votes"] += len(ballots)
        self.story.counts["open poll votes"] += sum(b.poll_id == open_.poll_id for b in ballots)

    def _open_poll_choices(self, poll: PollPlan) -> tuple[int, ...]:
        rng = self.story.rng
        weights = [35, 25, 25, 15][: len(poll.option_ids)]
        first = rng.choices(range(len(poll.option_ids)), weights=weights)[0]
        chosen = [first]
        if poll.max_choices > 1 and rng.random() < 0.4:
            rest = [i for i in range(len(poll.option_ids)) if i != first]
            chosen.append(rng.choices(rest, weights=[weights[i] for i in rest])[0])
        return tuple(poll.option_ids[i] for i in chosen)

    def close_first_poll(self) -> None:
        """The first poll closes once every ballot is in; the tram is declined, and the winner
        published six weeks later."""
        assert self.closed is not None  # open_polls came first
        poll = polls.find_poll(self.closed.poll_id)
        assert poll is not None
        with clock.replaying(self.closed_at):
            polls.close_poll(poll, self.admin)
        with clock.replaying(self.closed_at + dt.timedelta(days=6)):
            topics.decline_topic(self.topics["tram"], TRAM_DECLINED, self.editor)
        published = self.closed_at + dt.timedelta(days=45)
        with clock.replaying(published):
            topics.publish_topic(
                self.topics["shops"],
                f"{ARTICLE_BASE_URL}/investigations/who-owns-the-empty-shops",
                published.date(),
                self.editor,
            )

    def add_proposals(self) -> None:
        """Patrons' ideas waiting for review, and one the editor turned down."""
        if not self.proposer_ids:
            return
        now = self.story.now
        for who, (days_ago, title, pitch, link) in enumerate(RECENT_PROPOSALS):
            at = now - dt.timedelta(days=days_ago, hours=self.story.rng.randint(0, 23))
            self._propose(at, who + 2, title, pitch, link)
        pizza = self._propose(now - dt.timedelta(days=23), -1, *PIZZA, None)
        with clock.replaying(now - dt.timedelta(days=20)):
            topics.reject_topic(pizza, PIZZA_REJECTED, self.editor)
