"""How much one ballot counts: the three weighting rules, and the cap on any one member's share.

Units. A ballot's weight is an integer number of millionths of a vote (``WEIGHT_SCALE``), stored
on the ballot when it is cast, so sums are exact integers on every database:

- one patron, one vote: every ballot weighs 1 (1,000,000);
- by tier: the whole number staff set for the patron's tier (a tier without a rule, and a
  custom amount outside the tiers, weigh 1);
- by the square root of the monthly amount: the square root of what the patron gives per
  month in the major unit of their currency (EUR 9.00 a month weighs 3, EUR 5.00 weighs
  2.236067), rounded down to the millionth with integer arithmetic (``math.isqrt``), never a
  binary float. A yearly plan counts a twelfth of its amount per month, rounded down to the
  minor unit (``Subscription.monthly_amount``). Amounts are taken at face value in their own
  currency: there is no exchange rate.

Why a snapshot at cast time, not a computation at count time: a poll's result must not move
after the fact. If weights were read from subscriptions when counting, a closed poll's winner
could change weeks later because a patron upgraded, lapsed or got a refund. The snapshot is
taken again each time the patron changes their ballot, and the rules (weighting, tier weights,
cap) can only be edited while the poll is a draft, before anyone has voted.

The cap (``Poll.weight_cap_percent``): no single ballot may hold more than p% of the total
weight. Capping one large ballot lowers the total, so the limit is a fixed point: the largest
value M with M = p x (sum of min(w, M) over all ballots). Every ballot heavier than M counts M;
the others count in full. It is found exactly, with fractions, from the ballots grouped by
weight (see :func:`cap_limit`); results then need only SQL sums split at M. With fewer than
100/p ballots (that weigh anything) no assignment can keep everyone under p%; then every
ballot counts as the lightest, which is the closest one can come (each holds 1/n).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Protocol

from supporters.money import exponent
from supporters.voting.models import WEIGHT_SCALE, Poll, PollTierRule, Weighting

# Currencies have at most 3 decimals (ISO 4217), far below this.
_MAX_EXPONENT = 12


def sqrt_weight(monthly_minor: int, currency: str) -> int:
    """The square root of a monthly amount in major units, in millionths, rounded down.

    floor(sqrt(minor / 10**e) * 10**6) equals isqrt(minor * 10**(12 - e)): exact integers.
    """
    if monthly_minor <= 0:
        return 0
    digits = exponent(currency)
    assert digits <= _MAX_EXPONENT
    return math.isqrt(monthly_minor * 10 ** (_MAX_EXPONENT - digits))


class Support(Protocol):
    """What a ballot's weight reads of a patron's support: a subscription, or a grant's tier
    (:class:`supporters.voting.eligibility.GrantedSupport`)."""

    @property
    def tier_id(self) -> int | None: ...

    @property
    def monthly_amount(self) -> int: ...

    @property
    def currency(self) -> str: ...


def ballot_weight(poll: Poll, subscription: Support, rules: Mapping[int, PollTierRule]) -> int:
    """The weight, in millionths of a vote, that this patron's ballot carries in this poll."""
    if poll.weighting is Weighting.TIER:
        rule = rules.get(subscription.tier_id) if subscription.tier_id is not None else None
        return (rule.weight if rule is not None else 1) * WEIGHT_SCALE
    if poll.weighting is Weighting.SQRT_AMOUNT:
        return sqrt_weight(subscription.monthly_amount, subscription.currency)
    return WEIGHT_SCALE


def cap_limit(groups: Iterable[tuple[int, int]], percent: int) -> Fraction | None:
    """The weight M above which ballots are cut down to M, or None when no ballot is cut.

    ``groups`` are (weight, number of ballots with that weight). With the k heaviest ballots
    cut to M and the rest (summing to R) kept whole, M = p(kM + R), so M = pR / (1 - pk). Try
    k = 0, then the heaviest group, then the next..., and stop at the first M that is at least
    the heaviest ballot still kept whole.
    """
    # Ballots that weigh nothing hold no share and need no cap: leave them out.
    ordered = sorted(((w, c) for w, c in groups if c > 0 and w > 0), reverse=True)
    if not ordered:
        return None
    share = Fraction(percent, 100)
    remaining = sum(w * c for w, c in ordered)
    capped = 0
    for weight, count in ordered:
        room = 1 - share * capped
        if room > 0:
            limit = share * remaining / room
            if limit >= weight:
                return None if capped == 0 else limit
        capped += count
        remaining -= weight * count
    # Fewer than 100/p ballots: the cap cannot hold for all; everyone counts as the lightest.
    return Fraction(ordered[-1][0])


def capped_weight(weight: int, limit: Fraction | None) -> Fraction:
    """What one ballot counts once the cap is applied."""
    if limit is not None and weight > limit:
        return limit
    return Fraction(weight)
