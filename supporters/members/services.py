"""Account operations: passwordless sign-in and sign-up, sessions, profile and email changes.

Services flush and never commit; the view or command that calls them owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext

from supporters.audit import record_action
from supporters.db import insert_ignoring_conflicts, rows_matched, utcnow
from supporters.extensions import db
from supporters.members import limits
from supporters.members.models import (
    EMAIL_MAX_LENGTH,
    Member,
    MemberSession,
    Role,
    SignInPurpose,
    SignInRequest,
)

CODE_DIGITS = 6


class InvalidEmail(ValueError):
    """An address that cannot receive mail; the message is fit to show on the form."""


class SignInError(Exception):
    """A link or code that cannot sign anyone in; ``message`` is fit to show to the person."""

    def __init__(self, message: str, *, exhausted: bool = False) -> None:
        super().__init__(message)
        self.message = message
        # True when this request can never succeed again: ask for a new message.
        self.exhausted = exhausted


class EmailTaken(SignInError):
    """The new address of an email change belongs to another account."""


@dataclass(frozen=True)
class IssuedSignIn:
    """A stored sign-in request plus the secrets that only the email will ever carry."""

    request: SignInRequest
    token: str
    code: str
    is_new_member: bool


def normalize_email(raw: str) -> str:
    """Validate an address's syntax and return the form we store: trimmed, lower-cased.

    :raises InvalidEmail: empty, too long, or not an address.
    """
    candidate = (raw or "").strip()
    if not candidate:
        raise InvalidEmail(_("Enter your email address."))
    if len(candidate) > EMAIL_MAX_LENGTH:
        raise InvalidEmail(_("An email address has at most %(n)d characters.", n=EMAIL_MAX_LENGTH))
    try:
        checked = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(_("This is not a valid email address. Check it and try again.")) from exc
    # The domain is folded to one spelling (full-width letters too); a local part that would
    # fold differently, like "ｎame", is a look-alike of another address, not an address of its own.
    if unicodedata.normalize("NFKC", checked.local_part) != checked.local_part:
        raise InvalidEmail(_("This is not a valid email address. Check it and try again."))
    return checked.normalized.lower()


def get_member_by_email(email: str) -> Member | None:
    return db.session.scalar(sa.select(Member).where(Member.email == email.lower()))


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _hash_code(token_hash: str, code: str) -> str:
    # Keyed with the app secret: six digits alone would fall to a brute force of a leaked table.
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{token_hash}:{code}".encode(), hashlib.sha256).hexdigest()


def _ttl() -> dt.timedelta:
    return dt.timedelta(seconds=current_app.config["SIGN_IN_TTL_SECONDS"])


def _issue(
    *,
    purpose: SignInPurpose,
    email: str,
    member: Member | None,
    display_name: str = "",
    next_url: str = "",
    ip_address: str = "",
) -> IssuedSignIn:
    token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    token_hash = _hash_token(token)
    request = SignInRequest(
        purpose=purpose,
        email=email,
        member_id=member.id if member else None,
        display_name=display_name.strip(),
        token_hash=token_hash,
        code_hash=_hash_code(token_hash, code),
        next_url=next_url,
        ip_address=ip_address,
        expires_at=utcnow() + _ttl(),
    )
    db.session.add(request)
    db.session.flush()
    return IssuedSignIn(request=request, token=token, code=code, is_new_member=member is None)


def request_sign_in(
    email: str, *, display_name: str = "", next_url: str = "", ip_address: str = ""
) -> IssuedSignIn:
    """Prepare a sign-in (or, for an unknown address, sign-up) message with a link and a code.

    No account is made here: a new member's row is written only once the address is proven.

    :raises InvalidEmail: the address is malformed.
    :raises limits.TooManyMessages: the address had its share of messages; roll back.
    """
    normalized = normalize_email(email)
    member = get_member_by_email(normalized)
    limits.lock_address(normalized)
    issued = _issue(
        purpose=SignInPurpose.SIGN_IN,
        email=normalized,
        member=member,
        display_name=display_name,
        next_url=next_url,
        ip_address=ip_address,
    )
    limits.admit_message(normalized)
    return issued


def request_email_change(member: Member, new_email: str, *, ip_address: str = "") -> IssuedSignIn:
    """Prepare a message to the new address; the change happens when it is confirmed from there.

    :raises InvalidEmail: the new address is malformed or is the current one.
    :raises limits.TooManyMessages: the new address had its share of messages; roll back.
    """
    normalized = normalize_email(new_email)
    if normalized == member.email:
        raise InvalidEmail(_("This is already your email address."))
    limits.lock_address(normalized)
    issued = _issue(
        purpose=SignInPurpose.CHANGE_EMAIL,
        email=normalized,
        member=member,
        ip_address=ip_address,
    )
    limits.admit_message(normalized)
    return IssuedSignIn(issued.request, issued.token, issued.code, is_new_member=False)


def _consume(request: SignInRequest, now: dt.datetime) -> None:
    """Mark the request used, exactly once even when two tabs race to use it."""
    result = db.session.execute(
        sa.update(SignInRequest)
        .where(SignInRequest.id == request.id, SignInRequest.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if rows_matched(result) != 1:
        raise SignInError(_("This link or code has already been used."), exhausted=True)
    request.used_at = now


def _check_usable(request: SignInRequest | None, now: dt.datetime) -> SignInRequest:
    if request is None:
        raise SignInError(_("This sign-in link is not valid. Ask for a new one."), exhausted=True)
    if request.used_at is not None:
        raise SignInError(_("This link or code has already been used."), exhausted=True)
    if request.expires_at <= now:
        raise SignInError(
            _("This link or code has expired: they work for 15 minutes. Ask for a new one."),
            exhausted=True,
        )
    return request


def check_token(token: str) -> SignInRequest:
    """Look at a sign-in link without using it (the page that shows the confirm button).

    :raises SignInError: unknown, expired or already used.
    """
    request = db.session.scalar(
        sa.select(SignInRequest).where(SignInRequest.token_hash == _hash_token(token))
    )
    return _check_usable(request, utcnow())


def redeem_token(token: str) -> SignInRequest:
    """Use a sign-in link's token.

    :raises SignInError: unknown, expired or already used.
    """
    request = check_token(token)
    _consume(request, utcnow())
    return request


def redeem_code(request_id: int, code: str) -> SignInRequest:
    """Use the 6-digit code of the request this browser started; each try counts.

    The attempt is counted by an UPDATE the database applies atomically, so parallel guesses
    cannot exceed the limit. The caller commits even when this raises, to keep the count.

    :raises SignInError: wrong code, too many attempts, expired or already used.
    """
    now = utcnow()
    request = _check_usable(db.session.get(SignInRequest, request_id), now)
    limit = current_app.config["SIGN_IN_CODE_ATTEMPTS"]
    counted = db.session.execute(
        sa.update(SignInRequest)
        .where(
            SignInRequest.id == request.id,
            SignInRequest.used_at.is_(None),
            SignInRequest.attempts < limit,
        )
        .values(attempts=SignInRequest.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if rows_matched(counted) != 1:
        raise SignInError(_("Too many wrong codes. Ask for a new message."), exhausted=True)
    db.session.refresh(request, ["attempts"])
    expected = request.code_hash
    given = _hash_code(request.token_hash, code.strip().replace(" ", ""))
    if not hmac.compare_digest(expected, given):
        left = limit - request.attempts
        if left <= 0:
            raise SignInError(_("Too many wrong codes. Ask for a new message."), exhausted=True)
        raise SignInError(
            ngettext(
                "That code is not right. %(num)d try left.",
                "That code is not right. %(num)d tries left.",
                left,
            )
        )
    _consume(request, now)
    return request


def complete_sign_in(request: SignInRequest, *, locale: str | None = None) -> Member:
    """Apply a redeemed request: sign in, make the new member, or change the address.

    Proving the address by email also marks it verified. ``locale``, the language the member
    reads the site in, is the one their messages are written in from now on.

    :raises EmailTaken: an email change to an address another account already uses.
    """
    now = utcnow()
    if request.purpose is SignInPurpose.CHANGE_EMAIL:
        return _apply_email_change(request, now)
    # The address may have joined since the message was sent (another tab, another request):
    # let the unique constraint decide, then read whichever row won.
    insert_ignoring_conflicts(
        Member,
        {
            "email": request.email,
            "display_name": request.display_name,
            "role": Role.MEMBER,
            "email_verified_at": now,
            "session_version": 1,
            "created_at": now,
        },
    )
    member = get_member_by_email(request.email)
    assert member is not None  # inserted above or already there
    if member.email_verified_at is None:
        member.email_verified_at = now
    if locale and member.locale != locale:
        member.locale = locale
    return member


def accept_link_sign_in(member: Member, *, locale: str | None = None) -> None:
    """Accept a sign-in by a single-use link that another feature made, sent to the member's
    address and has just verified (billing's offers): like a sign-in link, it proves the
    address. Staff sign in only by the short-lived sign-in message, never by such a link,
    which lives for days.

    :raises SignInError: a staff account.
    """
    if member.is_staff:
        raise SignInError(
            _("Staff accounts sign in with the emailed code. Sign in, then open this page again.")
        )
    if member.email_verified_at is None:
        member.email_verified_at = utcnow()
    if locale and member.locale != locale:
        member.locale = locale
    db.session.flush()


def _apply_email_change(request: SignInRequest, now: dt.datetime) -> Member:
    member = request.member
    assert member is not None  # the CHECK constraint guarantees it
    owner = get_member_by_email(request.email)
    if owner is not None and owner.id != member.id:
        raise EmailTaken(_("Another account already uses this address. Nothing was changed."))
    old_email = member.email
    member.email = request.email
    member.email_verified_at = now
    # Every other browser was signed in under the old address: sign them out.
    member.session_version += 1
    record_action(
        "member.email_changed",
        actor_id=member.id,
        target_type="member",
        target_id=member.id,
        details={"from": old_email, "to": request.email},
    )
    db.session.flush()
    return member


def start_session(member: Member, *, user_agent: str = "") -> MemberSession:
    """Record a newly signed-in browser; its id goes into the session cookie."""
    row = MemberSession(
        id=secrets.token_urlsafe(32),
        member_id=member.id,
        session_version=member.session_version,
        user_agent=user_agent[:255],
    )
    db.session.add(row)
    db.session.flush()
    return row


def session_member_query() -> sa.Select[Member]:
    """Select the member of a live session (bound as ``session_id``): not revoked, and not
    older than "sign out everywhere"."""
    return (
        sa.select(Member)
        .join(MemberSession, MemberSession.member_id == Member.id)
        .where(
            MemberSession.id == sa.bindparam("session_id"),
            MemberSession.revoked_at.is_(None),
            MemberSession.session_version == Member.session_version,
        )
    )


def end_session(session_id: str) -> None:
    """Revoke one browser's session: every copy of its cookie stops working."""
    db.session.execute(
        sa.update(MemberSession)
        .where(MemberSession.id == session_id, MemberSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def end_all_sessions(member: Member) -> None:
    """Sign the member out of every browser at once."""
    member.session_version += 1
    db.session.execute(
        sa.update(MemberSession)
        .where(MemberSession.member_id == member.id, MemberSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    db.session.flush()


def prune(now: dt.datetime | None = None) -> tuple[int, int]:
    """Delete sign-in requests that expired a day ago and sessions that can never work again.

    Requests are kept as long as the per-address limit counts them, if that is longer.
    Returns (requests, sessions) deleted. Safe to run from cron.
    """
    now = now or utcnow()
    kept_for = max(dt.timedelta(days=1), limits.longest_message_window())
    requests = db.session.execute(
        sa.delete(SignInRequest).where(SignInRequest.expires_at < now - kept_for)
    )
    outdated_version = (
        sa.select(Member.session_version)
        .where(Member.id == MemberSession.member_id)
        .scalar_subquery()
    )
    sessions = db.session.execute(
        sa.delete(MemberSession).where(
            sa.or_(
                MemberSession.revoked_at.is_not(None),
                MemberSession.session_version != outdated_version,
            )
        )
    )
    return rows_matched(requests), rows_matched(sessions)


def update_profile(member: Member, *, display_name: str) -> None:
    member.display_name = display_name.strip()
    db.session.flush()


def set_role(member: Member, role: Role, *, actor_id: int | None) -> bool:
    """Give a member a role; returns False when they already had it. Audited."""
    if member.role is role:
        return False
    record_action(
        "member.role_changed",
        actor_id=actor_id,
        target_type="member",
        target_id=member.id,
        details={"from": member.role.value, "to": role.value},
    )
    member.role = role
    db.session.flush()
    return True


def ensure_member(email: str, *, display_name: str = "") -> tuple[Member, bool]:
    """Find the member with this address or make one (not yet verified). Returns (member, new)."""
    normalized = normalize_email(email)
    member = get_member_by_email(normalized)
    if member is not None:
        return member, False
    member = Member(email=normalized, display_name=display_name.strip())
    db.session.add(member)
    db.session.flush()
    return member, True


def issue_sign_in(member: Member) -> IssuedSignIn:
    """A one-time sign-in for a member, handed over by other means than email (``create-staff``)."""
    return _issue(purpose=SignInPurpose.SIGN_IN, email=member.email, member=member)
