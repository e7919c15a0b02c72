"""Every route's access rule, asked of a visitor, a member, a patron, staff and an admin.

The table below is the list of routes: a route missing from it fails the first test, so a new
page cannot be added without saying who may open it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from tests.billing.fake_stripe import sign_payload
from tests.site import ENDS_THE_SESSION, ROLES, Site, build_site


class Access(enum.StrEnum):
    PUBLIC = "anyone"
    MEMBER = "signed-in members"
    PATRON = "patrons (members whose support is current)"
    STAFF = "staff and admins"
    ADMIN = "admins"
    SIGNED = "Stripe: a request signed with the webhook secret"


PUBLIC, MEMBER, PATRON, STAFF, ADMIN, SIGNED = Access

# Endpoint -> its rule, or a rule per method where they differ.
ACCESS: dict[str, Access | dict[str, Access]] = {
    "static": PUBLIC,
    "web.healthz": PUBLIC,
    "bench_hello": PUBLIC,
    "bench_signed_in": MEMBER,
    # members
    "members.sign_in": PUBLIC,
    "members.sign_up": PUBLIC,
    "members.enter_code": PUBLIC,
    "members.confirm_sign_in": PUBLIC,
    "members.sign_out": PUBLIC,
    "members.sign_out_everywhere": MEMBER,
    "members.account": MEMBER,
    "members.update_profile": MEMBER,
    "members.change_email": MEMBER,
    "members.update_mail_preferences": MEMBER,
    "members.unsubscribe": PUBLIC,
    # billing
    "billing.support": PUBLIC,
    "billing.checkout": PUBLIC,
    "billing.checkout_cancelled": PUBLIC,
    "billing.confirm_choice": MEMBER,
    "billing.checkout_success": MEMBER,
    "billing.manage": MEMBER,
    "billing.change": MEMBER,
    "billing.cancel": MEMBER,
    "billing.resume": MEMBER,
    "billing.open_portal": MEMBER,
    "billing.fix_card": MEMBER,
    "billing.demo_checkout": MEMBER,
    "billing.demo_portal": MEMBER,
    "billing.receive_webhook": SIGNED,
    "billing.open_offer": PUBLIC,
    "billing.show_offer": MEMBER,
    # voting
    "voting.list_polls": PUBLIC,
    "voting.show_poll": PUBLIC,
    "voting.list_reported": PUBLIC,
    "voting.propose_topic": {"GET": PUBLIC, "POST": PATRON},
    "voting.cast_vote": PATRON,
    "voting.list_proposals": MEMBER,
    "voting.manage_polls": STAFF,
    "voting.list_votes": STAFF,
    "voting.export_votes": STAFF,
    "voting.create_poll": ADMIN,
    "voting.edit_poll": ADMIN,
    "voting.add_option": ADMIN,
    "voting.create_option": ADMIN,
    "voting.remove_option": ADMIN,
    "voting.publish_poll": ADMIN,
    "voting.close_poll": ADMIN,
    "voting.decline_winner": ADMIN,
    "voting.manage_topics": ADMIN,
    "voting.create_topic": ADMIN,
    "voting.review_topic": ADMIN,
    "voting.approve_topic": ADMIN,
    "voting.reject_topic": ADMIN,
    "voting.merge_topic": ADMIN,
    "voting.commission_topic": ADMIN,
    "voting.publish_topic": ADMIN,
    "voting.decline_topic": ADMIN,
    # staff
    "staff.overview": STAFF,
    "staff.reports": STAFF,
    "staff.download_report": STAFF,
    "staff.export_payments": STAFF,
    "staff.list_members": STAFF,
    "staff.export_members": STAFF,
    "staff.show_member": STAFF,
    "staff.failed_payments": STAFF,
    "staff.list_disputes": STAFF,
    "staff.list_emails": STAFF,
    "staff.forget_bounce": ADMIN,
    "staff.email_schedule": ADMIN,
    "staff.change_role": ADMIN,
    "staff.grant_membership": ADMIN,
    "staff.end_grant": ADMIN,
    "patreon.show_progress": STAFF,
    "patreon.export_not_moved": STAFF,
    "patreon.new_import": ADMIN,
    "patreon.upload": ADMIN,
    "patreon.confirm_import": ADMIN,
    "patreon.invite": ADMIN,
    "patreon.save_reminder_days": ADMIN,
    "staff.list_tiers": ADMIN,
    "staff.create_tier": ADMIN,
    "staff.edit_tier": ADMIN,
    "staff.list_goals": ADMIN,
    "staff.create_goal": ADMIN,
    "staff.edit_goal": ADMIN,
    "staff.manage_staff": ADMIN,
    "staff.list_audit": ADMIN,
    "staff.list_background": ADMIN,
    "staff.retry_job": ADMIN,
    # public: embeds and the API
    "public.embed_goals": PUBLIC,
    "public.embed_poll": PUBLIC,
    "public.embed_patrons": PUBLIC,
    "public.frame_script": PUBLIC,
    "public.resize_script": PUBLIC,
    "public.list_tiers": PUBLIC,
    "public.list_goals": PUBLIC,
    "public.count_patrons": PUBLIC,
    "public.list_polls": PUBLIC,
    "public.list_stories": PUBLIC,
    "public.describe_api": PUBLIC,
    "public.manage_embeds": ADMIN,
    "public.add_origin": ADMIN,
    "public.remove_origin": ADMIN,
}
#: Routes that exist only where the benchmarks run (SUPPORTERS_BENCH_ROUTES).
BENCH_ONLY = {"bench_hello", "bench_signed_in"}
#: Where a view reads its form before it can tell who may post it, the form it is sent.
VALID_FORMS = {"voting.propose_topic": {"title": "Buses", "pitch": "Why are they late?"}}

ADMITTED = {
    PUBLIC: set(ROLES),
    MEMBER: {"member", "patron", "staff", "admin"},
    PATRON: {"patron"},
    STAFF: {"staff", "admin"},
    ADMIN: {"admin"},
}
WEBHOOK_SECRET = "whsec_routes_test"


@pytest.fixture
def site(make_app: Callable[..., Flask]) -> Iterator[Site]:
    # Access is decided before any form is read: the CSRF check and rate limits would only
    # answer first, so they are left out here (their own tests are elsewhere).
    app = make_app(
        BENCH_ROUTES=True,
        WTF_CSRF_ENABLED=False,
        RATELIMIT_ENABLED=False,
        STRIPE_WEBHOOK_SECRET=[WEBHOOK_SECRET],
    )
    with app.app_context():
        yield build_site(app)


def _rule_of(endpoint: str, method: str) -> Access:
    rule = ACCESS[endpoint]
    return rule[method] if isinstance(rule, dict) else rule


def _outcome(response: TestResponse) -> str:
    """What a role was told: sent to sign in, refused, or let in (whatever the page then said)."""
    location = response.headers.get("Location", "")
    if response.status_code == 302 and "/sign-in?next=" in location:
        return "sent to sign in"
    if response.status_code == 403:
        return "refused"
    return "admitted"


def _expected(rule: Access, role: str) -> str:
    if role in ADMITTED[rule]:
        return "admitted"
    return "sent to sign in" if role == "anonymous" else "refused"


def test_every_route_has_an_access_rule(site: Site, make_app: Callable[..., Flask]) -> None:
    endpoints = {rule.endpoint for rule in site.app.url_map.iter_rules()}
    assert sorted(endpoints - ACCESS.keys()) == [], "routes without a rule in ACCESS"
    assert sorted(ACCESS.keys() - endpoints) == [], "rules for routes that no longer exist"
    for endpoint, rule in ACCESS.items():
        if isinstance(rule, dict):
            methods = {m for r in site.app.url_map.iter_rules(endpoint) for m in r.methods or ()}
            assert rule.keys() == methods - {"HEAD", "OPTIONS"}, endpoint
    production_like = make_app()
    assert not BENCH_ONLY & production_like.view_functions.keys()


def test_each_route_admits_exactly_the_roles_its_rule_names(site: Site) -> None:
    clients = {role: site.client(role) for role in ROLES}
    wrong = []
    for rule in sorted(site.app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            access = _rule_of(rule.endpoint, method)
            if access is SIGNED:
                continue
            for role in ROLES:
                url = site.url(rule, role)
                data = VALID_FORMS.get(rule.endpoint, {})
                response = clients[role].open(url, method=method, data=data)
                if rule.endpoint in ENDS_THE_SESSION:
                    clients[role] = site.client(role)
                if _outcome(response) != _expected(access, role):
                    wrong.append(
                        f"{method} {url} as {role}: {_outcome(response)} "
                        f"({response.status_code}); the rule is {access.value}"
                    )
    assert not wrong, "\n".join(wrong)


def test_the_webhook_listens_to_stripe_s_signature_alone(site: Site) -> None:
    for role in ROLES:
        client = site.client(role)
        event = {"id": f"evt_{role}", "type": "routes.tested", "data": {"object": {"id": "x"}}}
        body = json.dumps(event).encode()
        for signature in (None, "t=1,v1=00", sign_payload(body, "whsec_someone_else")):
            headers = {"Stripe-Signature": signature} if signature else {}
            response = client.post("/stripe/webhook", data=body, headers=headers)
            assert response.status_code == 400, (role, signature)
        signed = {"Stripe-Signature": sign_payload(body, WEBHOOK_SECRET)}
        assert client.post("/stripe/webhook", data=body, headers=signed).status_code == 200
