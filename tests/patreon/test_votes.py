"""An imported paid-up patron votes as a patron of the tier their pledge maps to, until the
period they paid Patreon for ends."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters import audit
from supporters.extensions import db
from supporters.members.models import Member
from supporters.patreon import services
from supporters.patreon.cli import read_file
from supporters.voting import ballots, errors, results
from supporters.voting.eligibility import check_eligibility
from supporters.voting.models import Weighting
from supporters.voting.weights import sqrt_weight
from tests.patreon.conftest import EXPORT
from tests.voting.conftest import Clock
from tests.voting.factories import make_poll, option_ids

UTC = dt.UTC


def _member(email: str) -> Member:
    member = db.session.scalar(sa.select(Member).where(Member.email == email))
    assert member is not None
    return member


def test_a_paid_up_patron_votes_until_the_paid_through_date_and_not_after(
    app: Flask, tiers: dict[str, int], import_clock: dt.datetime, clock: Clock
) -> None:
    export = read_file(EXPORT)
    services.import_export(export, services.proposed_mapping(export), audit.SYSTEM)
    db.session.commit()
    ada, grace, alan = (_member(f"{n}@example.org") for n in ("ada", "grace", "alan"))

    clock.at = dt.datetime(2026, 12, 31, 9, 0, tzinfo=UTC)  # Ada paid Patreon until Jan 1st
    poll = make_poll(
        weighting=Weighting.SQRT_AMOUNT,
        opens_at=clock.at - dt.timedelta(days=1),
        closes_at=clock.at + dt.timedelta(days=10),
    )
    first = option_ids(poll)[0]
    # Weighed as the local tier the pledge maps to, in the site's currency: a yearly $120
    # pledge votes as the €10 tier, a €5 one as the €5 tier.
    assert ballots.cast_vote(poll, ada, [first]).weight == sqrt_weight(500, "EUR")
    assert ballots.cast_vote(poll, grace, [first]).weight == sqrt_weight(1000, "EUR")
    with pytest.raises(errors.NotEligible):
        ballots.cast_vote(poll, alan, [first])  # declined on Patreon
    assert results.count_eligible(poll, clock.at) == 2
    db.session.commit()

    clock.at = dt.datetime(2027, 1, 1, 9, 0, tzinfo=UTC)  # the next charge date: not paid here
    assert not check_eligibility(poll, ada, clock.at).may_vote
    with pytest.raises(errors.NotEligible):
        ballots.cast_vote(poll, ada, [first])
    assert check_eligibility(poll, grace, clock.at).may_vote
    assert results.count_eligible(poll, clock.at) == 1
