"""The same ballot submitted 20 times at once (tabs, double clicks): the database decides."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from supporters.extensions import db
from supporters.voting.models import Poll, Vote, VoteChoice
from tests.helpers import csrf_token
from tests.voting.conftest import Clock
from tests.voting.factories import make_patron, make_poll, option_ids, sign_in

SUBMISSIONS = 20


@pytest.mark.postgres_only
def test_twenty_concurrent_submissions_leave_one_consistent_ballot(
    make_app: Any, clock: Clock
) -> None:
    # Every request holds a connection while it waits for the ballot's row lock.
    app = make_app(SQLALCHEMY_ENGINE_OPTIONS={"pool_size": SUBMISSIONS + 2, "max_overflow": 0})
    with app.app_context():
        poll = make_poll(("A", "B", "C", "D"), max_choices=2)
        patron = make_patron()
        db.session.commit()
        ids = option_ids(poll)
        ballots = [sorted({ids[i % 4], ids[(i + 1) % 4]}) for i in range(SUBMISSIONS)]
        # One signed-in browser tab per submission, all for the same patron.
        tabs = [sign_in(app.test_client(), patron) for _ in range(SUBMISSIONS)]
        tokens = [csrf_token(tab, f"/polls/{poll.id}") for tab in tabs]
        poll_id, patron_id = poll.id, patron.id
        db.session.remove()

    start = threading.Barrier(SUBMISSIONS)
    statuses: list[int] = []

    def submit(index: int) -> None:
        start.wait(timeout=30)
        response = tabs[index].post(
            f"/polls/{poll_id}/vote",
            data={"csrf_token": tokens[index], "option": ballots[index]},
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(SUBMISSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert statuses == [303] * SUBMISSIONS
    with app.app_context():
        votes = db.session.scalars(sa.select(Vote).where(Vote.poll_id == poll_id)).all()
        assert [vote.member_id for vote in votes] == [patron_id]
        chosen = sorted(
            db.session.scalars(
                sa.select(VoteChoice.option_id).where(VoteChoice.vote_id == votes[0].id)
            )
        )
        # Exactly one submission's choices, never a mixture of two or a doubled set.
        assert chosen in ballots
        # One ballot counted, however many submissions raced to cast it.
        assert db.session.scalar(sa.select(Poll.ballot_count).where(Poll.id == poll_id)) == 1
        db.session.remove()
