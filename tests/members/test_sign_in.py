"""Passwordless sign-up and sign-in: by emailed link (confirmed with a POST) or by 6-digit code."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from supporters.extensions import db
from supporters.mail.models import OutboxMessage
from supporters.members.models import Member, MemberSession, SignInRequest
from supporters.members.redirects import safe_next
from supporters.params import is_safe_text
from tests.factories import make_member, make_tier
from tests.helpers import csrf_token, submit, text
from tests.smtp import MailServer, body, sign_in_code, sign_in_link


def _members() -> list[Member]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Member).order_by(Member.id)))


def _ask_code(client: FlaskClient, email: str, page: str = "/sign-in", **fields: str) -> None:
    response = submit(client, page, email=email, **fields)
    assert response.status_code == 302, text(response)
    assert response.headers["Location"].endswith("/sign-in/code")


def test_sign_up_with_code_makes_a_verified_member(
    client: FlaskClient, mail_server: MailServer
) -> None:
    _ask_code(client, "Ada.Reader@Example.org", page="/join", display_name="Ada")
    # Nothing is written to members until the address is proven.
    assert _members() == []

    message = mail_server.last_to("ada.reader@example.org")
    assert "join The Test Gazette" in message["Subject"]
    response = submit(client, "/sign-in/code", code=sign_in_code(message))
    assert response.status_code == 302

    [member] = _members()
    assert member.email == "ada.reader@example.org"
    assert member.display_name == "Ada"
    assert member.email_verified_at is not None
    account = client.get("/account")
    assert account.status_code == 200
    assert "ada.reader@example.org" in text(account)
    assert account.headers["Cache-Control"] == "no-store"


def test_link_opens_a_confirmation_page_and_only_the_post_signs_in(
    app: Flask, mail_server: MailServer
) -> None:
    make_member("reader@example.org")
    db.session.commit()
    asking = app.test_client()
    _ask_code(asking, "reader@example.org")
    link = sign_in_link(mail_server.last_to("reader@example.org"))
    path = link.removeprefix("http://localhost")

    # A mail scanner (or a second browser) following the link uses nothing up.
    scanner = app.test_client()
    for _ in range(3):
        page = scanner.get(path)
        assert page.status_code == 200
        assert "Sign in as reader@example.org" in text(page)
    assert scanner.get("/account").status_code == 302

    phone = app.test_client()
    response = phone.post(path, data={"csrf_token": csrf_token(phone, path)})
    assert response.status_code == 302, text(response)
    assert phone.get("/account").status_code == 200

    # Single use: the same link and the same message's code no longer work.
    again = app.test_client()
    assert again.get(path).status_code == 410
    used = submit(
        asking, "/sign-in/code", code=sign_in_code(mail_server.last_to("reader@example.org"))
    )
    assert used.status_code == 410
    assert "already been used" in text(used)


def test_unknown_and_known_addresses_get_the_same_answer(
    app: Flask, mail_server: MailServer
) -> None:
    make_member("known@example.org")
    db.session.commit()
    answers = []
    for page, email in [
        ("/sign-in", "known@example.org"),
        ("/sign-in", "unknown@example.org"),
        ("/join", "known@example.org"),
        ("/join", "unknown2@example.org"),
    ]:
        client = app.test_client()
        response = submit(client, page, email=email, display_name="X")
        answers.append((response.status_code, response.headers.get("Location")))
        follow = client.get("/sign-in/code")
        page_text = re.sub(r'name="csrf_token" type="hidden" value="[^"]+"', "", text(follow))
        answers.append((follow.status_code, page_text.replace(email, "EMAIL")))
    assert len({a for a in answers[0::2]}) == 1
    assert len({a for a in answers[1::2]}) == 1
    # Each address got its message; a duplicate sign-up learns about its account privately.
    duplicate = mail_server.to("known@example.org")[-1]
    assert "already have an account" in body(duplicate)


def test_duplicate_sign_up_signs_in_the_existing_account(
    client: FlaskClient, mail_server: MailServer
) -> None:
    existing = make_member("ben@example.org", display_name="Ben")
    db.session.commit()
    _ask_code(client, "BEN@example.org", page="/join", display_name="Somebody Else")
    response = submit(
        client, "/sign-in/code", code=sign_in_code(mail_server.last_to("ben@example.org"))
    )
    assert response.status_code == 302
    [member] = _members()
    assert member.id == existing.id
    assert member.display_name == "Ben"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": ""}, "Enter your email address."),
        ({"email": "not-an-address"}, "not a valid email address"),
        # A look-alike of name@example.com would have had limits of its own.
        ({"email": "\uff4eame@example.com"}, "not a valid email address"),
        ({"email": "a@" + "b" * 250 + ".org"}, "at most 254 characters"),
        ({"email": "x@example.org", "display_name": "n" * 81}, "at most 80 characters"),
    ],
)
def test_bad_sign_up_input_is_explained_on_the_form(
    client: FlaskClient, mail_server: MailServer, fields: dict[str, str], message: str
) -> None:
    response = submit(client, "/join", **fields)
    assert response.status_code == 400
    assert message in text(response)
    assert 'aria-invalid="true"' in text(response)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignInRequest)) == 0
    assert mail_server.messages == []


def test_missing_csrf_token_is_refused(client: FlaskClient, mail_server: MailServer) -> None:
    response = client.post("/sign-in", data={"email": "x@example.org"})
    assert response.status_code == 400
    assert "The form expired" in text(response)
    assert mail_server.messages == []


def test_wrong_code_counts_and_the_fifth_miss_ends_the_request(
    client: FlaskClient, mail_server: MailServer
) -> None:
    _ask_code(client, "carla@example.org", page="/join")
    right = sign_in_code(mail_server.last_to("carla@example.org"))
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    response = submit(client, "/sign-in/code", code="12ab")
    assert response.status_code == 400
    assert "6 digits" in text(response)
    for left in (4, 3, 2, 1):
        response = submit(client, "/sign-in/code", code=wrong)
        assert response.status_code == 400
        assert f"{left} tr" in text(response)
    response = submit(client, "/sign-in/code", code=wrong)
    assert response.status_code == 410
    assert "Too many wrong codes" in text(response)
    # The right code is now useless too, and no account was made.
    response = client.post(
        "/sign-in/code", data={"csrf_token": csrf_token(client, "/sign-in"), "code": right}
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/sign-in")
    assert _members() == []


def test_expired_code_and_link_are_refused(
    app: Flask, client: FlaskClient, mail_server: MailServer
) -> None:
    _ask_code(client, "dora@example.org", page="/join")
    message = mail_server.last_to("dora@example.org")
    db.session.execute(
        sa.update(SignInRequest).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
    )
    db.session.commit()
    response = submit(client, "/sign-in/code", code=sign_in_code(message))
    assert response.status_code == 410
    assert "expired" in text(response)
    path = sign_in_link(message).removeprefix("http://localhost")
    other = app.test_client()
    assert other.get(path).status_code == 410
    assert other.post(path, data={"csrf_token": csrf_token(other, "/sign-in")}).status_code == 410
    assert _members() == []


def test_only_hashes_are_stored(client: FlaskClient, mail_server: MailServer) -> None:
    _ask_code(client, "eve@example.org", page="/join")
    message = mail_server.last_to("eve@example.org")
    token = sign_in_link(message).rsplit("/", 1)[1]
    code = sign_in_code(message)
    row = db.session.scalars(sa.select(SignInRequest)).one()
    stored = " ".join(str(v) for v in (row.token_hash, row.code_hash))
    assert token not in stored and code not in stored
    # The message went through the outbox: once sent, its copy there is erased.
    [sent] = db.session.scalars(sa.select(OutboxMessage))
    kept = " ".join(str(v) for v in (sent.subject, sent.text_body, sent.html_body, sent.headers))
    assert token not in kept and code not in kept


def test_the_message_has_a_text_and_an_html_part_with_the_link_and_the_code(
    client: FlaskClient, mail_server: MailServer
) -> None:
    _ask_code(client, "ines@example.org", page="/join")
    message = mail_server.last_to("ines@example.org")
    link, code = sign_in_link(message), sign_in_code(message)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert f'href="{link}"' in html.get_content() and code in html.get_content()
    assert "Finish joining" in html.get_content()


def test_the_code_page_says_where_the_message_stands(
    app: Flask, client: FlaskClient, mail_server: MailServer
) -> None:
    """A request cannot know whether the mail server takes the message: the page asks again."""
    _ask_code(client, "jo@example.org")
    assert "We are sending a message to jo@example.org" in text(client.get("/sign-in/code"))
    mail_server.deliver()
    assert "We sent a message to jo@example.org" in text(client.get("/sign-in/code"))

    mail_server.refuse("gone@example.org")
    refused = app.test_client()
    _ask_code(refused, "gone@example.org")
    mail_server.deliver()
    page = text(refused.get("/sign-in/code"))
    assert "The mail server for gone@example.org refused our message" in page

    port = app.config["SMTP_PORT"]
    app.config["SMTP_PORT"] = 9  # nothing listens there: the server is away
    waiting = app.test_client()
    _ask_code(waiting, "kai@example.org")
    mail_server.deliver()
    app.config["SMTP_PORT"] = port
    page = text(waiting.get("/sign-in/code"))
    assert "We have not been able to send the message to kai@example.org yet" in page


def test_sign_out_makes_a_copied_cookie_useless(app: Flask, mail_server: MailServer) -> None:
    make_member("fay@example.org")
    db.session.commit()
    browser = app.test_client()
    _ask_code(browser, "fay@example.org")
    submit(browser, "/sign-in/code", code=sign_in_code(mail_server.last_to("fay@example.org")))
    stolen = browser.get_cookie("session")
    assert stolen is not None

    second_device = app.test_client()
    _ask_code(second_device, "fay@example.org")
    submit(
        second_device, "/sign-in/code", code=sign_in_code(mail_server.last_to("fay@example.org"))
    )

    submit(browser, "/account", action="/sign-out")
    assert browser.get("/account").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen.value, domain=stolen.domain)
    assert thief.get("/account").status_code == 302
    # Signing out here leaves the member's other device signed in.
    assert second_device.get("/account").status_code == 200


def test_sign_out_everywhere_ends_every_session(app: Flask, mail_server: MailServer) -> None:
    make_member("gil@example.org")
    db.session.commit()
    devices = [app.test_client() for _ in range(2)]
    for device in devices:
        _ask_code(device, "gil@example.org")
        submit(device, "/sign-in/code", code=sign_in_code(mail_server.last_to("gil@example.org")))
        assert device.get("/account").status_code == 200
    response = submit(devices[0], "/account", action="/sign-out-everywhere")
    assert response.status_code == 302
    assert [d.get("/account").status_code for d in devices] == [302, 302]
    db.session.expire_all()
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(MemberSession)
            .where(MemberSession.revoked_at.is_(None))
        )
        == 0
    )


def test_change_email_is_confirmed_from_the_new_address(
    app: Flask, client: FlaskClient, mail_server: MailServer
) -> None:
    make_member("hal@example.org")
    taken = make_member("taken@example.org")
    db.session.commit()
    _ask_code(client, "hal@example.org")
    submit(client, "/sign-in/code", code=sign_in_code(mail_server.last_to("hal@example.org")))

    response = submit(client, "/account", action="/account/email", email="Hal.New@Example.org")
    assert response.status_code == 302
    assert _members()[0].email == "hal@example.org"  # not before confirmation
    response = submit(
        client, "/sign-in/code", code=sign_in_code(mail_server.last_to("hal.new@example.org"))
    )
    assert response.status_code == 302
    assert _members()[0].email == "hal.new@example.org"
    assert "hal.new@example.org" in text(client.get("/account"))

    # An address another account uses is refused at confirmation, and nothing changes.
    submit(client, "/account", action="/account/email", email="taken@example.org")
    response = submit(
        client, "/sign-in/code", code=sign_in_code(mail_server.last_to("taken@example.org"))
    )
    assert response.status_code == 409
    assert [m.email for m in _members()] == ["hal.new@example.org", taken.email]


def test_sign_in_requests_are_rate_limited_per_email(
    make_app: object, mail_server: MailServer
) -> None:
    app = make_app(SIGN_IN_LIMIT_PER_EMAIL="3 per hour", SIGN_IN_LIMIT_PER_IP="100 per hour")  # type: ignore[operator]
    statuses = []
    for n in range(4):
        client = app.test_client()  # a fresh browser each time: the limit is on the address
        statuses.append(
            submit(
                client, "/sign-in", email="IVY@example.org" if n else "ivy@example.org"
            ).status_code
        )
    assert statuses == [302, 302, 302, 429]
    assert len(mail_server.to("ivy@example.org")) == 3
    other = submit(app.test_client(), "/sign-in", email="other@example.org")
    assert other.status_code == 302


def test_sign_in_requests_are_rate_limited_per_ip(
    make_app: object, mail_server: MailServer
) -> None:
    app = make_app(SIGN_IN_LIMIT_PER_IP="2 per hour")  # type: ignore[operator]
    client = app.test_client()
    statuses = [submit(client, "/sign-in", email=f"r{n}@example.org").status_code for n in range(3)]
    assert statuses == [302, 302, 429]
    assert "tried this too often" in text(submit(client, "/sign-in", email="r9@example.org"))


# Each value arrives as ``/sign-in?next=<value>`` and goes back in the form's hidden field.
HOSTILE_NEXT = [
    "/\t/evil.example",  # the tab vanished as the Location header was written: //evil.example
    "/\n/evil.example",  # the header could not be written at all, after the sign-in was committed
    "/\r\n/evil.example",
    "//evil.example/",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https:evil.example",
    "https://evil.example/",
    "HTTPS://evil.example/",
    "javascript:alert(1)",
    "evil.example",
    "/%2F%2Fevil.example",
    "/%2f/evil.example",
    "/%5Cevil.example",
    "/%09/evil.example",
    "/%252F%252Fevil.example",
    " /account",
    "/\u3000/evil.example",
    "/\u00a0/evil.example",
    "/\u2028/evil.example",
    "/\ufeff/evil.example",
    "/" + "a" * 600,
]


def _leaves_the_site(location: str) -> bool:
    """Whether a browser following this Location header from our site would land elsewhere.

    Browsers strip surrounding controls and spaces, drop tabs and line breaks, read backslashes
    as slashes and any run of two or more leading slashes as a host; a server or proxy on the
    way may percent-decode the path once more.
    """
    for candidate in (location, unquote(location)):
        cleaned = candidate.strip("".join(map(chr, range(0x21)))).translate(
            {ord("\t"): None, ord("\n"): None, ord("\r"): None, ord("\\"): "/"}
        )
        if urlsplit(cleaned).scheme or cleaned.startswith("//"):
            return True
    return False


_PIECES = [
    "/",
    "\\",
    "\t",
    "\n",
    " ",
    "\u3000",
    "%2F",
    "%5C",
    "%09",
    "https:",
    "evil",
    ".",
    "?",
    "#",
]


@given(st.lists(st.sampled_from(_PIECES), max_size=6).map("".join) | st.text(max_size=8))
def test_whatever_next_says_the_browser_stays_on_the_site(target: str) -> None:
    kept = safe_next(target)
    assert kept in ("", target)
    assert not (kept and _leaves_the_site(kept)), repr(target)


def test_next_page_is_kept_after_sign_in(make_app: Any, mail_server: MailServer) -> None:
    app = make_app(SIGN_IN_LIMIT_PER_IP="1000 per hour")
    kept = [
        "/polls/",
        "/polls/?page=2#open",
        "/support/continue?tier=reader&amount=500&interval=year&attempt=a-b_c",
    ]
    for n, target in enumerate(kept):
        client = app.test_client()
        submit(client, "/sign-in?" + urlencode({"next": target}), email=f"kept{n}@example.org")
        code = sign_in_code(mail_server.last_to(f"kept{n}@example.org"))
        assert submit(client, "/sign-in/code", code=code).headers["Location"] == target


def test_next_page_never_leaves_the_site_and_never_wastes_the_code(
    make_app: Any, mail_server: MailServer
) -> None:
    app = make_app(
        SIGN_IN_LIMIT_PER_IP="1000 per hour", SIGN_IN_ATTEMPT_LIMIT_PER_IP="1000 per hour"
    )
    went_astray = []
    for n, target in enumerate(HOSTILE_NEXT):
        email = f"next{n}@example.org"
        client = app.test_client()
        page = client.get("/sign-in?" + urlencode({"next": target}))
        if is_safe_text(target, multiline=False):
            assert page.status_code == 200
            assert 'name="next" type="hidden" value=""' in text(page), target
        else:  # a control character: the request filter turns the whole address away
            assert page.status_code == 400, target
        # The hidden field as posted, even if someone edits the page.
        asked = submit(client, "/sign-in", email=email, next=target)
        if not is_safe_text(target, multiline=True):
            assert asked.status_code == 400, target
            asked = submit(client, "/sign-in", email=email)
        assert asked.status_code == 302, (target, asked.status_code)
        signed_in = submit(client, "/sign-in/code", code=sign_in_code(mail_server.last_to(email)))
        if signed_in.status_code != 302 or signed_in.headers["Location"] != "/account":
            went_astray.append((target, signed_in.status_code, signed_in.headers.get("Location")))
        # Whatever happened, the code signed this browser in: it was not used up by an error.
        assert client.get("/account").status_code == 200, target
    assert went_astray == []


def test_a_tampered_choice_on_the_support_page_still_signs_in(
    app: Flask, mail_server: MailServer
) -> None:
    make_tier("reader")
    db.session.commit()
    client = app.test_client()
    # The choice rides in the next URL; a hidden field edited to 600 characters made it too
    # long to store, and the reader got an error page instead of a code.
    response = submit(
        client,
        "/",
        action="/support",
        tier="reader",
        interval="month",
        email="kim@example.org",
        attempt="a" * 600,
    )
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in/code"
    signed_in = submit(
        client, "/sign-in/code", code=sign_in_code(mail_server.last_to("kim@example.org"))
    )
    assert signed_in.headers["Location"] == "/account"
