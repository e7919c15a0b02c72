"""Hostile values in every form and query parameter of the site, sent as every role.

The forms are not listed by hand: every page of the URL map is opened (as an admin, a patron
and a visitor, who between them see every form) and its forms and links are read, so a new
form is fuzzed as soon as a page shows it. Hypothesis then fills them with what no browser
sends (NUL and other controls, text that is not UTF-8, huge strings, numbers out of every
range, dates at the ends of the calendar, fields left out or repeated) and checks two things:
the answer is never a 5xx, and a refused (4xx) request leaves every table as it was.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, quote_from_bytes, urljoin, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule

from supporters.billing.models import StripeEvent
from supporters.extensions import db
from supporters.voting import ballots, clock
from supporters.voting.models import PollState, TopicStatus
from tests.billing.fake_stripe import sign_payload
from tests.helpers import csrf_token, submit
from tests.site import ENDS_THE_SESSION, ROLES, Site, build_site, snapshot
from tests.voting.factories import make_poll, make_topic

ROUNDS = 4  # requests to each route
WEBHOOK_SECRET = "whsec_fuzz"
TOKEN = "{csrf_token of the role}"
#: The one refusal that writes: a wrong sign-in code is counted, so that guessing runs out.
WRITES_WHEN_REFUSED = {"members.enter_code": {"sign_in_requests"}}
#: Query parameters views read that no page links to (they arrive from emails or Stripe).
UNLINKED_QUERY = ("next", "session_id", "tier", "amount", "interval", "attempt", "after", "before")


@dataclasses.dataclass(frozen=True)
class Target:
    """A route to send a request to, and the fields its forms or links showed, with the values
    a browser would have sent for each."""

    method: str
    rule: Rule
    values: tuple[tuple[str, Any], ...]  # the URL's arguments
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    seen_by: tuple[str, ...]  # the roles whose pages showed it
    query: str = ""  # a form's own query string (its action's)


class _PageReader(HTMLParser):
    """The forms of a page (method, action, fields with their values) and its links."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str, dict[str, list[str]]]] = []
        self.links: list[str] = []
        self._fields: dict[str, list[str]] | None = None
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            self._fields = {}
            self.forms.append((a.get("method", "get").upper(), a.get("action", ""), self._fields))
        elif self._fields is None or not a.get("name"):
            return
        elif tag in ("input", "button"):
            self._fields.setdefault(a["name"], []).append(a.get("value") or _typed(a))
        elif tag == "textarea":
            self._textarea = a["name"]
            self._fields.setdefault(a["name"], []).append(_typed(a))
        elif tag == "select":
            self._select = a["name"]
            self._fields.setdefault(a["name"], [])
        elif tag == "option" and self._select:
            self._fields[self._select].append(a.get("value", ""))

    def handle_data(self, data: str) -> None:
        if self._fields is not None and self._textarea:
            self._fields[self._textarea].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._fields = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def _typed(attrs: dict[str, str]) -> str:
    """What a person would type into an empty field, judged by its type and hints (three
    letters at most: a currency), so that a form gets past its validators with one field gone
    wrong, and that field goes as far as the app lets it."""
    kind, mode = attrs.get("type", "text"), attrs.get("inputmode", "")
    if kind in ("hidden", "checkbox", "radio", "submit"):
        return ""
    if "email" in (kind, mode, attrs.get("autocomplete")):
        return "reader@example.org"
    if attrs.get("maxlength") == "3":
        return "EUR"
    return {
        "url": "https://example.org/story",
        "decimal": "12",
        "numeric": "123456",
        "number": "1",
        "date": "2026-06-01",
        "datetime-local": "2026-06-01T12:00",
    }.get(mode or kind, "sample-text")


def _discover(site: Site) -> list[Target]:
    """Every route, with the fields its forms and links show to an admin, a patron or a visitor."""
    app = site.app
    adapter = app.url_map.bind("localhost")
    fields: dict[tuple[str, str], dict[str, set[str]]] = {}
    targets: dict[tuple[str, str], tuple[Rule, dict[str, Any]]] = {}
    seen_by: dict[tuple[str, str], set[str]] = {}
    queries: dict[tuple[str, str], str] = {}

    def add(method: str, url: str, found: dict[str, list[str]], role: str = "") -> None:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            return
        try:
            rule, values = adapter.match(parts.path, method, return_rule=True)
        except Exception:  # noqa: BLE001 - a link to a redirect or elsewhere: nothing to fuzz
            return
        if not _fuzzed(rule):
            return
        targets.setdefault((method, rule.endpoint), (rule, dict(values)))
        seen_by.setdefault((method, rule.endpoint), set()).update([role] if role else [])
        known = fields.setdefault((method, rule.endpoint), {})
        for name, options in found.items():
            known.setdefault(name, set()).update(options)
        if method != "GET":
            queries.setdefault((method, rule.endpoint), parts.query)
            return
        for name, value in _query(parts.query):
            known.setdefault(name, set()).add(value)

    pages = [
        site.url(rule, "admin")
        for rule in app.url_map.iter_rules()
        if _fuzzed(rule) and "GET" in (rule.methods or ())
    ]
    pages += _pages_in_other_states(site)
    for role in ("admin", "patron", "anonymous"):
        client = _client(site, role)
        for page in pages:
            response = client.get(page)
            shown = response.status_code == 200 and response.mimetype == "text/html"
            add("GET", page, {}, role if shown else "")
            if not shown:
                continue
            reader = _PageReader()
            reader.feed(response.get_data(as_text=True))
            for link in reader.links:
                add("GET", urljoin(page, link), {})
            for method, action, found in reader.forms:
                add(method, urljoin(page, action or page), found, role)
    # A route no page links to still gets what it reads, or at least its address fuzzed.
    for rule in app.url_map.iter_rules():
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            if _fuzzed(rule) and (method, rule.endpoint) not in targets:
                add(method, site.url(rule, "admin"), {})
    for (method, _endpoint), known in fields.items():
        if method == "GET":
            for name in UNLINKED_QUERY:
                known.setdefault(name, {""})
        elif not any(name.endswith("csrf_token") for name in known):
            known["csrf_token"] = {""}  # a form no page showed still carries the token
    db.session.commit()
    return [
        Target(
            method,
            rule,
            tuple(values.items()),
            tuple(sorted((name, tuple(sorted(o))) for name, o in fields[method, endpoint].items())),
            tuple(sorted(seen_by[method, endpoint])),
            queries.get((method, endpoint), ""),
        )
        for (method, endpoint), (rule, values) in sorted(targets.items())
    ]


def _fuzzed(rule: Rule) -> bool:
    # Static files and the webhook's raw body are not forms; the webhook has its own test.
    return rule.endpoint not in ("static", "billing.receive_webhook")


def _query(query: str) -> Iterator[tuple[str, str]]:
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        yield name, value


def _client(site: Site, role: str) -> FlaskClient:
    """The role's browser; a visitor's has asked for a sign-in code, so it has a code to enter."""
    client = site.client(role)
    if role == "anonymous":
        assert submit(client, "/sign-in", email="visitor@example.org").status_code == 302
    return client


def _pages_in_other_states(site: Site) -> list[str]:
    """Pages whose forms show only in some states: a draft's editor, a closed poll's winner,
    a shortlisted topic's review, a choice to confirm after signing in."""
    draft = make_poll(state=PollState.DRAFT)
    decided = make_poll()
    ballots.cast_vote(decided, site.people["patron"], [decided.options[0].id])
    decided.state = PollState.CLOSED
    decided.closes_at = clock.now()
    shortlisted = make_topic(status=TopicStatus.SHORTLISTED)
    db.session.commit()
    return [
        f"/polls/manage/{draft.id}/edit",
        f"/polls/{decided.id}",
        f"/polls/manage/topics/{shortlisted.id}",
        "/support/continue?tier=custom&amount=700&interval=month&attempt=fuzz",
    ]


# -- what no browser sends ----------------------------------------------------------------------

# Text the door lets through (it is clean), for the forms and the database to cope with.
_ODD = [
    "",
    " ",
    "line\r\nbreak\ttab",
    "\u202eevil",
    "\u200b",
    "\U0001f4a5",
    "%00",
    "%FF",
    "x" * 6000,
    "é" * 3000,
    "0",
    "-1",
    "1.5",
    "2147483647",
    "2147483648",
    "-2147483649",
    "99999999999999999999",
    "9" * 5000,
    "1e99999999",
    "NaN",
    "-inf",
    "\u0663",
    "\u00b2",
    "0001-01-01",
    "9999-12-31",
    "2026-02-30",
    "9999-12-31T23:59",
    "0001-01-01T00:00",
    "https://",
    "https://" + "x" * 600 + ".example",
    "javascript:alert(1)",
    "//evil.example",
    "a@b",
    "true",
    "[]",
    "' OR 1=1 --",
]
# Text the door must turn away: control characters and what is left of text that was not UTF-8.
_CONTROL = ["\x00", "a\x00b", "NUL\x00", "\x1b[2J", "\x7f", "\x85", "\ufffd", "tab\tin a query"]

odd_text = st.one_of(
    st.sampled_from(_ODD),
    st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12),
)
control_text = st.one_of(st.sampled_from(_CONTROL), st.text(max_size=12))
hostile_text = st.one_of(odd_text, control_text)
# Bytes go out percent-encoded or raw, exactly as given: not UTF-8, surrogates, NUL.
hostile_bytes = st.one_of(
    st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"caf\xe9", b"\x00", b"a\x00b"]),
    st.binary(max_size=6),
)
# Numbers a column cannot hold, or that are not numbers to int() (ids, amounts, orders, pages).
numbers = st.one_of(
    st.sampled_from(["2147483648", "-2147483649", "99999999999999999999", "1e99999999", "\u00b2"]),
    st.integers(-(2**80), 2**80).map(str),
)
hostile = st.one_of(odd_text, numbers, control_text, hostile_bytes)


def _encode(value: str | bytes) -> str:
    return quote_from_bytes(value.encode() if isinstance(value, str) else value, safe="")


@st.composite
def _requests(draw: st.DrawFn, target: Target) -> tuple[str, dict[str, Any]]:
    """A role, and what its request to the target carries: one field made hostile, left out or
    sent twice, the others mostly as a browser would send them; sometimes a field of its own."""
    # Mostly someone who was shown the form, so that it gets past the access check.
    role = draw(st.sampled_from(target.seen_by * 3 + ROLES))
    values = dict(target.values)
    if target.values and draw(st.integers(0, 2)) == 0:  # an address argument gone wrong
        name = draw(st.sampled_from([name for name, _ in target.values]))
        values[name] = draw(st.one_of(numbers, hostile_text))
    # The CSRF token is left out now and then; any other field may be the one gone wrong.
    names = [name for name, _ in target.fields if not name.endswith("csrf_token")]
    chosen = draw(st.sampled_from(names)) if names else None
    pairs: list[tuple[str, str | bytes]] = []
    for name, options in target.fields:
        kept = draw(st.sampled_from(options or ("",)))
        how = "keep"
        if name.endswith("csrf_token"):
            how = "drop" if draw(st.integers(0, 9)) == 0 else "keep"
        elif name == chosen or draw(st.integers(0, 5)) == 0:
            how = draw(st.sampled_from(["hostile", "hostile", "drop", "twice"]))
        if how == "keep":
            pairs.append((name, kept))
        elif how == "hostile":
            pairs.append((name, draw(hostile)))
        elif how == "twice":
            pairs += [(name, kept), (name, draw(hostile))]
    if not names or draw(st.integers(0, 3)) == 0:
        pairs.append((draw(hostile_text), draw(hostile)))
    encoding = draw(st.sampled_from(["urlencoded", "urlencoded", "multipart", "raw"]))
    return role, {"values": values, "pairs": pairs, "encoding": encoding}


def _path(target: Target, values: dict[str, Any]) -> str:
    return re.sub(
        r"<(?:[^:<>]+:)?([^<>]+)>",
        lambda match: quote(str(values[match.group(1)]), safe=""),
        target.rule.rule,
    )


def _send(client: FlaskClient, target: Target, request: dict[str, Any], token: str) -> Any:
    pairs = [(n, token if v == TOKEN else v) for n, v in request["pairs"]]
    encoding = request["encoding"]
    if encoding == "raw":  # bytes as they are, never percent-encoded
        body = b"&".join(_raw(n) + b"=" + _raw(v) for n, v in pairs)
    else:
        body = "&".join(f"{_encode(n)}={_encode(v)}" for n, v in pairs).encode()
    path = _path(target, request["values"])
    if target.query:
        path += "?" + target.query
    if target.method == "GET":
        return client.get(path, environ_overrides={"QUERY_STRING": body.decode("latin-1")})
    if encoding == "multipart":
        boundary = "fuzz-boundary-7MA4YWxk"
        body = (
            b"".join(
                b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
                % (boundary.encode(), _raw(n).replace(b'"', b"%22"), _raw(v))
                for n, v in pairs
            )
            + f"--{boundary}--\r\n".encode()
        )
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        content_type = "application/x-www-form-urlencoded"
    return client.open(path, method=target.method, data=body, content_type=content_type)


def _raw(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


@pytest.fixture
def site(make_app: Callable[..., Flask]) -> Iterator[Site]:
    # Rate limits would answer most sign-in posts with 429 before their forms are read.
    app = make_app(RATELIMIT_ENABLED=False, STRIPE_WEBHOOK_SECRET=[WEBHOOK_SECRET])
    with app.app_context():
        yield build_site(app)


def test_no_crafted_form_or_query_gives_a_5xx_or_writes_when_refused(site: Site) -> None:
    targets = _discover(site)
    clients = {role: _client(site, role) for role in ROLES}
    tokens = {role: csrf_token(clients[role], "/") for role in ROLES}
    # The page's CSRF token belongs to the admin who read it: each role sends its own.
    targets = [
        dataclasses.replace(
            t, fields=tuple((n, (TOKEN,) if n.endswith("csrf_token") else o) for n, o in t.fields)
        )
        for t in targets
    ]
    last: dict[str, Any] = {"snapshot": snapshot()}
    failures: list[str] = []

    def check(target: Target, role: str, request: dict[str, Any]) -> None:
        sent = f"{target.method} {target.rule.endpoint} as {role}: {request!r:.400}"
        try:
            response = _send(clients[role], target, request, tokens[role])
        except Exception as exc:  # noqa: BLE001 - in tests the app raises what would be a 500
            failures.append(f"{sent}\n  raised {exc!r:.300}")
            last["snapshot"] = snapshot()
            return
        if response.status_code >= 500:
            failures.append(f"{sent}\n  answered {response.status_code}")
        elif response.status_code >= 400:
            allowed = WRITES_WHEN_REFUSED.get(target.rule.endpoint, set())
            after = snapshot()
            written = [t for t in after if t not in allowed and after[t] != last["snapshot"][t]]
            if written:
                failures.append(f"{sent}\n  answered {response.status_code}, wrote {written}")
            last["snapshot"] = after
            return
        if target.rule.endpoint in ENDS_THE_SESSION:
            clients[role] = _client(site, role)
            tokens[role] = csrf_token(clients[role], "/")
        last["snapshot"] = snapshot()

    # Each example is a request to every route, so that none is left out. It changes the site
    # the next one finds: failures are gathered as they happen, not shrunk by Hypothesis
    # (replayed on a changed site they might not recur).
    @settings(
        max_examples=ROUNDS,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.tuples(*(_requests(target) for target in targets)))
    def fuzz(cases: tuple[tuple[str, dict[str, Any]], ...]) -> None:
        for target, (role, request) in zip(targets, cases, strict=True):
            check(target, role, request)

    fuzz()
    assert not failures, f"{len(failures)} requests failed:\n" + "\n".join(failures[:30])


def test_no_crafted_webhook_gives_a_5xx_or_is_stored(make_app: Callable[..., Flask]) -> None:
    app = make_app(STRIPE_WEBHOOK_SECRET=[WEBHOOK_SECRET])
    client = app.test_client()

    @settings(
        max_examples=60, deadline=None, derandomize=True, database=None, phases=[Phase.generate]
    )
    @given(
        body=st.one_of(st.binary(max_size=200), hostile_bytes, hostile_text.map(str.encode)),
        signed=st.booleans(),
    )
    def check(body: bytes, signed: bool) -> None:
        signature = sign_payload(body, WEBHOOK_SECRET) if signed else "t=1,v1=0"
        response = client.post(
            "/stripe/webhook", data=body, headers={"Stripe-Signature": signature}
        )
        assert response.status_code == 400
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StripeEvent)) == 0

    with app.app_context():
        check()
