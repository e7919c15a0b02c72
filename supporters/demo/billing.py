"""The demo's tiers and funding goals, made as an admin makes them (``staff.services``): three
tiers patrons pick from, and two goals a little beyond what the patrons give.
"""

from __future__ import annotations

from dataclasses import dataclass

from supporters.audit import Actor
from supporters.billing import figures
from supporters.billing.models import GoalMeasure
from supporters.demo.story import Story
from supporters.staff.services import GoalValues, TierValues, create_goal, create_tier

CURRENCY = "EUR"


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


class Billing:
    """Makes the demo's tiers and goals."""

    def __init__(self, story: Story) -> None:
        self.story = story
        self.tiers: list[tuple[int, TierSpec]] = []

    def add_tiers(self, admin: Actor) -> None:
        """The three tiers, made by the admin as the staff pages make them."""
        for position, spec in enumerate(TIERS):
            values = TierValues(
                name=spec.name,
                slug=spec.slug,
                description=spec.description,
                currency=CURRENCY,
                monthly_amount=spec.monthly_amount,
                yearly_amount=spec.yearly_amount,
                position=position,
                is_active=True,
            )
            self.tiers.append((create_tier(values, admin).tier.id, spec))
        self.story.counts["tiers"] = len(TIERS)

    def add_goals(self, admin: Actor) -> None:
        """Two goals a little beyond what the demo patrons give, so readers see progress."""
        revenue = figures.monthly_revenue(CURRENCY)
        patrons = figures.patron_count()
        goals = (
            GoalValues(
                title="Fund a second investigative reporter",
                description=(
                    "With this much support every month we can hire a second full-time "
                    "reporter for the investigations desk."
                ),
                measure=GoalMeasure.MONTHLY_REVENUE,
                target=round_up_nicely(revenue * 3 // 200) * 100,  # 1.5 times, in whole euros
                currency=CURRENCY,
                position=0,
                is_active=True,
            ),
            GoalValues(
                title="A patron on every street",
                description=(
                    "The more readers chip in, the less we depend on advertisers. Help us "
                    "reach this many patrons by the end of the year."
                ),
                measure=GoalMeasure.PATRONS,
                target=round_up_nicely(patrons * 5 // 4),
                currency=None,
                position=1,
                is_active=True,
            ),
        )
        for values in goals:
            create_goal(values, admin)
        self.story.counts["goals"] = len(goals)
