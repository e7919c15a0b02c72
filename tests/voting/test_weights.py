"""The weighting arithmetic: exact square roots in millionths, and the cap's fixed point."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supporters.voting.models import WEIGHT_SCALE
from supporters.voting.weights import cap_limit, capped_weight, sqrt_weight


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (400, "EUR", 2_000_000),  # EUR 4.00 a month: sqrt(4) = 2
        (900, "EUR", 3_000_000),
        (10_000, "EUR", 10_000_000),
        (500, "EUR", 2_236_067),  # sqrt(5) = 2.2360679..., rounded down
        (200, "EUR", 1_414_213),  # sqrt(2) = 1.4142135...
        (1, "EUR", 100_000),  # one cent: sqrt(0.01) = 0.1
        (900, "JPY", 30_000_000),  # no minor unit: 900 yen is sqrt(900) = 30
        (4_000, "KWD", 2_000_000),  # three decimals: 4.000 dinar
        (0, "EUR", 0),
    ],
)
def test_square_root_weights_are_exact_millionths(minor: int, currency: str, expected: int) -> None:
    assert sqrt_weight(minor, currency) == expected


def test_no_cap_needed_when_nobody_is_over_it() -> None:
    assert cap_limit([(WEIGHT_SCALE, 10)], 25) is None
    assert cap_limit([(6, 1), (1, 4)], 60) is None  # 6 of 10 is exactly 60%
    assert cap_limit([], 10) is None


def test_cap_by_hand() -> None:
    # Weights 6, 1, 1, 1, 1 with a 25% cap: M = 0.25 x (M + 4), so M = 4/3 and the
    # capped ballot holds (4/3) / (16/3) = 25% exactly.
    assert cap_limit([(6, 1), (1, 4)], 25) == Fraction(4, 3)
    # Two heavy ballots: 10, 10, 1, 1, 1, 1, 1, 1 with 20%: M = 0.2 x (2M + 6), M = 2.
    assert cap_limit([(10, 2), (1, 6)], 20) == 2


def test_too_few_ballots_for_the_cap_count_equally() -> None:
    # Two ballots cannot both stay under 10%: each counts as the lighter one.
    assert cap_limit([(9, 1), (1, 1)], 10) == 1
    # Ballots that weigh nothing neither need a cap nor help another stay under it.
    assert cap_limit([(5, 1), (0, 10)], 10) == 5


def _brute_force_share(weights: list[int], limit: Fraction | None) -> Fraction:
    counted = [capped_weight(w, limit) for w in weights]
    total = sum(counted, Fraction(0))
    return max(counted) / total if total else Fraction(0)


@given(
    weights=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=40),
    percent=st.integers(min_value=1, max_value=100),
)
def test_cap_is_the_largest_limit_that_keeps_everyone_under_it(
    weights: list[int], percent: int
) -> None:
    groups: dict[int, int] = {}
    for weight in weights:
        groups[weight] = groups.get(weight, 0) + 1
    limit = cap_limit(groups.items(), percent)
    share = Fraction(percent, 100)
    weighing = [w for w in weights if w > 0]
    feasible = share * len(weighing) >= 1
    if not weighing:
        assert limit is None
        return
    if feasible:
        assert _brute_force_share(weights, limit) <= share
        if limit is not None:
            # Tight: the capped ballots hold exactly the cap (no more was taken than needed).
            counted = sum((capped_weight(w, limit) for w in weights), Fraction(0))
            assert limit == share * counted
            assert limit < max(weights)
    else:
        assert limit == min(weighing)
