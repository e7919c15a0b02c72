"""Staff pages: who may open what, the members list, a member's page, and admin changes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters import i18n
from supporters.audit import AuditEntry
from supporters.billing.membership import membership_of
from supporters.billing.models import FundingGoal, Payment, PaymentKind, Tier
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Member, Role
from supporters.staff import member_list
from supporters.voting import ballots
from supporters.voting.models import Poll, PollOption, PollState, Topic, TopicStatus, Vote
from tests.factories import make_member, make_tier, signed_in_client
from tests.helpers import csrf_token, submit, text
from tests.staff.driver import Driver
from tests.voting.factories import make_poll, option_ids

STAFF_PAGES = (
    "/staff/",
    "/staff/reports",
    "/staff/members",
    "/staff/members?q=a&status=active&sort=name",
    "/staff/members.csv",
    "/staff/failed-payments",
    "/staff/disputes",
    "/staff/reports/patrons.csv",
    "/staff/reports/at-risk.csv",
    "/staff/payments.csv?date_from=2026-01-01&date_to=2026-12-31",
)
ADMIN_PAGES = (
    "/staff/tiers",
    "/staff/tiers/new",
    "/staff/goals",
    "/staff/goals/new",
    "/staff/accounts",
    "/staff/audit",
)


@pytest.fixture
def people(app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[str, Member]:
    """A few members with subscriptions written through billing, and a staff member, an admin."""
    make_tier("reader", name="Reader", monthly=500, yearly=5000)
    make_tier("supporter", name="Supporter", monthly=1000, yearly=10000)
    people = {
        "olena": make_member("olena@example.org", display_name="Olena Kovalenko"),
        "petro": make_member("petro@example.org", display_name="Petro Shevchenko"),
        "ines": make_member("ines@example.com", display_name="Inès Dubois"),
        "sam": make_member("sam@example.net", display_name='=HYPERLINK("x")'),
        "never": make_member("never@example.org", display_name="Never Paid"),
        "staff": make_member("staff@example.org", role=Role.STAFF, display_name="Sta Ff"),
        "admin": make_member("admin@example.org", role=Role.ADMIN, display_name="Ad Min"),
    }
    db.session.commit()
    d = Driver(monkeypatch).at(utcnow())
    d.subscribe(people["olena"], "sub_olena", amount=500, tier="reader")
    d.subscribe(people["petro"], "sub_petro", amount=10000, interval="year", tier="supporter")
    first = d.subscribe(people["ines"], "sub_ines", amount=1000, tier="supporter")
    invoice = next(i for i in d.invoices.values() if i.subscription_id == first.id)
    d.refund(invoice.id, 400)
    d.invoice("sub_ines", paid=False)
    d.update("sub_ines", status="past_due")
    d.subscribe(people["sam"], "sub_sam", amount=700)
    d.cancel_now("sub_sam")
    return people


def client_for(app: Flask, member: Member | None):  # type: ignore[no-untyped-def]
    """A client for the member (None: signed out).

    Ask it with ``buffered=True`` for streamed downloads: the body is then read inside the
    request's own context, as a WSGI server reads it.
    """
    return app.test_client() if member is None else signed_in_client(app, member)


def test_anonymous_visitors_are_sent_to_sign_in(app: Flask, people: dict[str, Member]) -> None:
    client = client_for(app, None)
    for url in STAFF_PAGES + ADMIN_PAGES:
        response = client.get(url, buffered=True)
        assert response.status_code == 302, url
        assert "/sign-in" in response.headers["Location"]


def test_members_get_403(app: Flask, people: dict[str, Member]) -> None:
    client = client_for(app, people["olena"])
    for url in STAFF_PAGES + ADMIN_PAGES + (f"/staff/members/{people['petro'].id}",):
        assert client.get(url, buffered=True).status_code == 403, url


def test_staff_read_but_cannot_change(app: Flask, people: dict[str, Member]) -> None:
    client = client_for(app, people["staff"])
    for url in STAFF_PAGES + (f"/staff/members/{people['petro'].id}",):
        assert client.get(url, buffered=True).status_code == 200, url
    for url in ADMIN_PAGES:
        assert client.get(url, buffered=True).status_code == 403, url
    token = csrf_token(client, "/staff/")  # the payments form carries none; the sign-out form does
    posts = {
        "/staff/tiers/new": {"name": "Patron", "slug": "patron", "currency": "EUR"},
        f"/staff/tiers/{db.session.scalar(sa.select(Tier.id))}": {"name": "Renamed"},
        "/staff/goals/new": {"title": "More"},
        "/staff/accounts": {"email": "x@example.org", "role": "admin"},
        f"/staff/members/{people['staff'].id}/role": {"role": "admin"},
    }
    for url, data in posts.items():
        assert client.post(url, data={"csrf_token": token, **data}).status_code == 403, url
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Tier)) == 2
    assert db.session.get_one(Member, people["staff"].id).role is Role.STAFF


def test_admin_manages_tiers_and_every_change_is_audited(
    app: Flask, people: dict[str, Member]
) -> None:
    admin = people["admin"]
    client = client_for(app, admin)
    for url in ADMIN_PAGES:
        assert client.get(url, buffered=True).status_code == 200, url
    response = submit(
        client,
        "/staff/tiers/new",
        name="Champion",
        slug="champion",
        description="Our thanks, in print.",
        currency="eur",
        monthly_amount="25",
        yearly_amount="250,00",
        position="3",
        is_active="y",
    )
    assert response.status_code == 302
    tier = db.session.scalars(sa.select(Tier).where(Tier.slug == "champion")).one()
    assert (tier.monthly_amount, tier.yearly_amount, tier.currency) == (2500, 25000, "EUR")

    url = f"/staff/tiers/{tier.id}"
    assert "25.00" in text(client.get(url, buffered=True))
    response = submit(
        client,
        url,
        name="Champion",
        slug="champion",
        description="Our thanks, in print.",
        currency="EUR",
        monthly_amount="30",
        yearly_amount="250",
        position="3",
        is_active="y",
    )
    assert response.status_code == 302
    db.session.refresh(tier)
    assert tier.monthly_amount == 3000

    bad = submit(
        client,
        "/staff/tiers/new",
        name="X",
        slug="Not OK",
        currency="EUR",
        monthly_amount="-1",
        yearly_amount="1",
    )
    assert bad.status_code == 400
    assert "lower-case letters" in text(bad)

    entries = db.session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(e.action, e.actor_id) for e in entries] == [
        ("tier.created", admin.id),
        ("tier.updated", admin.id),
    ]
    assert entries[1].details == {"changes": {"monthly_amount": [2500, 3000]}}
    assert entries[1].ip_address == "127.0.0.1"
    log = text(client.get("/staff/audit?action=tier."))
    assert "tier.updated" in log and "Ad Min" in log


def test_admin_manages_goals_and_staff_accounts(app: Flask, people: dict[str, Member]) -> None:
    admin = people["admin"]
    client = client_for(app, admin)
    response = submit(
        client,
        "/staff/goals/new",
        title="A second reporter",
        measure="monthly_revenue",
        target="5000",
        currency="EUR",
        position="0",
        is_active="y",
    )
    assert response.status_code == 302
    goal = db.session.scalars(sa.select(FundingGoal)).one()
    assert (goal.target, goal.currency) == (500000, "EUR")
    assert "A second reporter" in text(client.get("/staff/"))

    response = submit(client, "/staff/accounts", email="New.Editor@Example.org", role="staff")
    assert response.status_code == 302
    editor = db.session.scalars(
        sa.select(Member).where(Member.email == "new.editor@example.org")
    ).one()
    assert editor.role is Role.STAFF

    url = f"/staff/members/{people['olena'].id}"
    response = submit(client, url, f"{url}/role", role="admin")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get_one(Member, people["olena"].id).role is Role.ADMIN

    # Nobody demotes themselves, so an admin cannot lock everyone out by mistake.
    own = f"/staff/members/{admin.id}"
    refused = submit(client, own, f"{own}/role", role="member")
    assert refused.status_code == 400
    assert "cannot change your own role" in text(refused)
    assert db.session.get_one(Member, admin.id).role is Role.ADMIN

    actions = db.session.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == [
        "goal.created",
        "member.created_by_staff",
        "member.role_changed",
        "member.role_changed",
    ]
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.actor_id == admin.id)
        )
        == 4
    )


def test_overview_shows_figures_definitions_and_charts(
    app: Flask, people: dict[str, Member]
) -> None:
    poll = make_poll(question="Which story next?")
    ballots.cast_vote(poll, people["olena"], option_ids(poll)[:1])
    db.session.commit()
    page = text(client_for(app, people["staff"]).get("/staff/"))
    # One ballot of three patrons who may vote in the open poll.
    assert "Which story next?" in page and "1 ballot / 3" in page and "33.3%" in page
    patrons = re.search(r'id="stat-patrons">(\d+)<', page)
    assert patrons and patrons.group(1) == "3"  # Olena, Petro, Inès (past due still counts)
    assert "€23.33" in page  # 5 + 10 + 8.33 (a yearly €100: a twelfth, rounded down)
    for definition in ("def-patrons", "def-mrr", "def-churn", "def-turnout", "def-revenue"):
        assert f'id="{definition}"' in page
    assert page.count('<svg class="chart"') >= 4
    assert " style=" not in page
    assert not re.search(r'(src|href)="https?://', page)

    # Past its closing time (which no one has opened the poll since): the clock closed it,
    # and its turnout counts the patrons who could vote then.
    poll.closes_at = utcnow()
    db.session.commit()
    page = text(client_for(app, people["staff"]).get("/staff/"))
    assert "Closed:" in page and "1 ballot / 3" in page and "33.3%" in page


def test_reports_page_says_what_it_cannot_know(app: Flask, people: dict[str, Member]) -> None:
    page = text(client_for(app, people["staff"]).get("/staff/reports"))
    assert "Cards expiring within 30 days are not listed" in page
    assert "Inès Dubois" in page  # past due, at risk
    assert "def-movements" in page and "def-cohorts" in page and "def-lifetime" in page
    assert " style=" not in page


def _names(app: Flask, member: Member, query: str) -> list[str]:
    page = text(client_for(app, member).get(f"/staff/members?{query}"))
    return re.findall(r'<td><a href="/staff/members/\d+">([^<]+)</a>', page)


def test_members_list_search_and_filters(app: Flask, people: dict[str, Member]) -> None:
    staff = people["staff"]
    assert _names(app, staff, "q=KOVAL") == ["Olena Kovalenko"]
    assert _names(app, staff, "q=example.com") == ["Inès Dubois"]
    assert _names(app, staff, "q=%25") == []  # a literal percent sign, not a wildcard
    assert _names(app, staff, "status=past_due") == ["Inès Dubois"]
    assert _names(app, staff, "status=canceled") == ["=HYPERLINK(&#34;x&#34;)"]
    assert set(_names(app, staff, "status=none")) == {"Never Paid", "Sta Ff", "Ad Min"}
    reader = db.session.scalar(sa.select(Tier.id).where(Tier.slug == "reader"))
    assert _names(app, staff, f"tier={reader}") == ["Olena Kovalenko"]
    assert _names(app, staff, "interval=year") == ["Petro Shevchenko"]
    assert _names(app, staff, "tier=custom") == []  # Sam's custom amount has ended
    assert _names(app, staff, "joined_from=2000-01-01&joined_to=2000-12-31") == []
    assert len(_names(app, staff, "joined_from=2000-01-01&sort=name")) == 7
    response = client_for(app, staff).get(
        "/staff/members?joined_from=2026-02-01&joined_to=2026-01-01"
    )
    assert response.status_code == 400


@pytest.mark.parametrize("sort", member_list.SORTS)
def test_keyset_pages_walk_every_member_once_both_ways(app: Flask, sort: str) -> None:
    for n in range(23):
        make_member(f"m{n:02d}@example.org", display_name=f"Name {n % 5}")
    db.session.commit()
    filters = member_list.MemberFilter(sort=sort)
    seen: list[int] = []
    page = member_list.page(filters, size=4)
    pages = [page]
    while page.next_cursor:
        page = member_list.page(filters, after=page.next_cursor, size=4)
        pages.append(page)
    seen = [m.id for p in pages for m in p.members]
    everyone = [m.id for m in db.session.scalars(sa.select(Member).order_by(*filters.order))]
    assert seen == everyone
    # And back again, page by page.
    back = [pages[-1]]
    while back[-1].previous_cursor:
        back.append(member_list.page(filters, before=back[-1].previous_cursor, size=4))
    assert [[m.id for m in p.members] for p in reversed(back)] == [
        [m.id for m in p.members] for p in pages
    ]
    with pytest.raises(member_list.BadCursor):
        member_list.page(filters, after="not-a-cursor")


def test_list_pages_link_to_each_other(
    app: Flask, people: dict[str, Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(member_list, "PAGE_SIZE", 3)
    client = client_for(app, people["staff"])
    first = text(client.get("/staff/members?sort=email"))
    link = re.search(r'href="(/staff/members\?[^"]*after=[^"]+)" rel="next"', first)
    assert link
    second = client.get(link.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    assert 'rel="prev"' in text(second)
    assert client.get("/staff/members?after=%%%").status_code == 400


def test_member_page_tells_the_whole_story(app: Flask, people: dict[str, Member]) -> None:
    ines = people["ines"]
    topic = Topic(
        title="Who owns the empty shops?", status=TopicStatus.PROPOSED, proposed_by_id=ines.id
    )
    poll = Poll(question="What next?", state=PollState.OPEN, opens_at=utcnow())
    db.session.add_all([topic, poll])
    db.session.flush()
    db.session.add(PollOption(poll_id=poll.id, topic_id=topic.id))
    db.session.add(Vote(poll_id=poll.id, member_id=ines.id))
    db.session.commit()

    page = text(client_for(app, people["staff"]).get(f"/staff/members/{ines.id}"))
    assert "Past due" in page and "Supporter" in page
    # Membership and role in words, not as the values stored.
    assert f"<dd>{membership_of(ines.id).label}</dd>" in page and "<dd>Member</dd>" in page
    assert "Became a patron" in page  # the history from the ledger
    assert "€4.00 of €10.00 paid on" in page  # the refund
    assert "The card was declined." in page  # the failed renewal
    assert "What next?" in page and "Who owns the empty shops?" in page
    assert "Change role" not in page  # staff read only
    admin_page = text(client_for(app, people["admin"]).get(f"/staff/members/{ines.id}"))
    assert "Change role" in admin_page
    assert client_for(app, people["staff"]).get("/staff/members/999999").status_code == 404


def _payment_rows(page: str, label: str) -> list[list[str]]:
    """The rows of the payments table labelled ``label``, as the text of their cells."""
    region = re.search(rf'aria-label="{label}">(.*?)</table>', page, re.S)
    assert region, label
    return [
        [
            " ".join(re.sub(r"<[^>]+>", " ", cell).split())
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", region.group(1), re.S)[1:]
    ]


def test_the_member_and_staff_see_the_same_payments(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = make_member("desk@example.org", role=Role.STAFF)
    ana = make_member("ana@example.org", display_name="Ana Lima")
    db.session.commit()
    now = utcnow()
    d = Driver(monkeypatch).at(now - dt.timedelta(days=70))
    d.subscribe(ana, "s_ana", amount=1000)
    (refunded,) = list(d.invoices)
    disputed = d.at(now - dt.timedelta(days=40)).invoice("s_ana").id
    d.at(now - dt.timedelta(days=10)).invoice("s_ana", paid=False)
    d.gift(ana, 2500)
    d.refund(refunded, 400)
    d.dispute(disputed, "dp_ana")
    gift = db.session.scalars(sa.select(Payment).where(Payment.kind == PaymentKind.ONE_TIME)).one()
    gift.receipt_url = "https://pay.example/receipts/gift"
    db.session.commit()

    own = text(signed_in_client(app, ana).get("/account/support"))
    seen_by_staff = text(client_for(app, staff).get(f"/staff/members/{ana.id}"))

    states = [row[1:5] for row in _payment_rows(own, "Your payments")]
    assert states == [
        ["Gift", "€25.00", "Paid", "Receipt"],
        ["Subscription", "€10.00", "Failed", ""],
        ["Subscription", "€10.00", "Taken back by your bank (€10.00)", ""],
        ["Subscription", "€10.00", "Partly refunded (€4.00)", ""],
    ]
    # Staff see the same rows, the member in the third person, and why a payment failed.
    rows = _payment_rows(seen_by_staff, "Payments")
    assert [row[:5] for row in rows] == [
        [cell.replace("your bank", "their bank") for cell in row]
        for row in _payment_rows(own, "Your payments")
    ]
    assert rows[1][5] == "The card was declined." and rows[2][5].startswith("Disputed on")
    assert 'href="https://pay.example/receipts/gift" rel="noopener">Receipt</a>' in seen_by_staff


def test_staff_see_open_disputes_the_soonest_deadline_first(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = make_member("staff@example.org", role=Role.STAFF)
    ana = make_member("ana@example.org", display_name="Ana Lima")
    bo = make_member("bo@example.org", display_name="Bo Berg")
    db.session.commit()
    now = utcnow()
    d = Driver(monkeypatch).at(now - dt.timedelta(days=40))
    d.subscribe(ana, "s_ana", amount=500)
    d.subscribe(bo, "s_bo", amount=1200)
    ana_first, bo_first = list(d.invoices)
    d.at(now - dt.timedelta(days=20))
    ana_second, bo_second = d.invoice("s_ana").id, d.invoice("s_bo").id
    # Opened 2 and 6 days ago: due in 5 days and tomorrow. The one under review waits on the
    # bank; the won one is decided.
    d.at(now - dt.timedelta(days=2)).dispute(ana_first, "dp_later")
    d.at(now - dt.timedelta(days=6)).dispute(bo_first, "dp_sooner", reason="subscription_canceled")
    d.at(now - dt.timedelta(days=9)).dispute(bo_second, "dp_review")
    d.dispute(bo_second, "dp_review", status="under_review")
    d.at(now - dt.timedelta(days=12)).dispute(ana_second, "dp_won")
    d.at(now - dt.timedelta(days=1)).dispute(ana_second, "dp_won", status="won")
    client = client_for(app, staff)

    page = text(client.get("/staff/disputes"))

    open_part, decided = page.split("Decided lately")
    order = [open_part.index(i) for i in ("dp_sooner", "dp_later", "dp_review")]
    assert order == sorted(order) and "dp_won" not in open_part and "dp_won" in decided
    assert open_part.count("Answer needed") == 2 and "the bank is deciding" in open_part
    assert "Says the subscription was cancelled" in open_part and "€12.00" in open_part
    with app.test_request_context():
        tomorrow = i18n.datetime(now + dt.timedelta(days=1), "short")
    assert f"{tomorrow} UTC" in open_part
    # dp_review's deadline has passed, but its evidence is in: nothing is overdue.
    assert "Past the deadline" not in open_part
    overview = text(client.get("/staff/"))
    assert "Open disputes" in overview and 'id="def-disputes"' in overview
    assert 'href="/staff/disputes"' in overview
    bo_page = text(client.get(f"/staff/members/{bo.id}"))
    assert bo_page.count("Answer needed") == 1 and "Under review" in bo_page
    assert "Bo Berg" in page and "Ana Lima" in page
