"""Flask-Login wiring: the session cookie names a session row, what a browser waiting for a
sign-in code remembers, and role checks for views."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, abort, current_app, request, session
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, current_user, login_user, logout_user

from supporters.audit import Actor
from supporters.extensions import db
from supporters.members import services
from supporters.members.models import Member

F = TypeVar("F", bound=Callable[..., Any])

# The browser that asked for a code remembers which request it belongs to.
PENDING_KEY = "sign_in_request_id"
PENDING_EMAIL_KEY = "sign_in_email"

_LOADED_WITH_SESSION = "supporters.loaded_with_session"


@dataclasses.dataclass(frozen=True)
class LoadedWithSession:
    """What a feature above members loads with the signed-in member on every request (billing:
    the member's current subscription), registered from ``create_app``: members import no
    other feature.

    ``join`` adds one entity to the statement that loads the session's member, outer-joined
    (None when there is no row), so that the user load stays one statement; ``load`` reads the
    same for a member who has just signed in.
    """

    join: Callable[[sa.Select[Member]], sa.Select[Member, Any]]
    load: Callable[[int], Any]


class SessionUser:
    """The signed-in member as Flask-Login sees it: identified by the session row, not the id."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, member: Member, session_id: str, subscription: Any) -> None:
        self.member = member
        self.session_id = session_id
        #: The member's current subscription (what :class:`LoadedWithSession` brings), loaded
        #: with the session: what their support gives them on this request (the banner,
        #: voting) without a query of its own.
        self.subscription = subscription

    def get_id(self) -> str:
        return self.session_id

    def __getattr__(self, name: str) -> Any:
        # Templates and views read `current_user.email`, `current_user.is_staff` and so on.
        return getattr(self.member, name)


def init_login(
    app: Flask, manager: LoginManager, with_session: LoadedWithSession | None = None
) -> None:
    """Sign members in with ``manager``; ``with_session`` is loaded with each one."""
    manager.init_app(app)
    manager.login_view = "members.sign_in"
    manager.login_message = _l("Sign in to open this page.")
    manager.login_message_category = "info"
    app.extensions[_LOADED_WITH_SESSION] = with_session

    @manager.user_loader
    def load_user(session_id: str) -> SessionUser | None:
        statement = _session_query(with_session)
        row = db.session.execute(statement, {"session_id": session_id}).first()
        if row is None:
            return None
        return SessionUser(row[0], session_id, row[1] if with_session else None)


@functools.cache
def _session_query(
    with_session: LoadedWithSession | None,
) -> sa.Select[Member] | sa.Select[Member, Any]:
    """The session's member, and what is loaded with them: one statement, built once."""
    query = services.session_member_query()
    return with_session.join(query) if with_session else query


def sign_in(member: Member, *, user_agent: str) -> None:
    """Start a fresh session for the member in this browser (the caller commits)."""
    row = services.start_session(member, user_agent=user_agent)
    # A new cookie from scratch: nothing from before sign-in (a fixated session) carries over.
    session.clear()
    session.permanent = True
    with_session: LoadedWithSession | None = current_app.extensions[_LOADED_WITH_SESSION]
    loaded = with_session.load(member.id) if with_session else None
    login_user(SessionUser(member, row.id, loaded))


def sign_in_by_link(member: Member, *, user_agent: str, locale: str | None = None) -> None:
    """Sign the member in from a single-use link another feature verified (an offer's): a
    fresh session, bound like any other to "sign out everywhere" (the caller commits).

    :raises services.SignInError: see :func:`services.accept_link_sign_in`.
    """
    services.accept_link_sign_in(member, locale=locale)
    sign_in(member, user_agent=user_agent)


def await_code(issued: services.IssuedSignIn) -> None:
    """Remember in this browser which sign-in request its code will be typed for."""
    session[PENDING_KEY] = issued.request.id
    session[PENDING_EMAIL_KEY] = issued.request.email


def sign_out() -> None:
    """Revoke this browser's session row and clear its cookie (the caller commits)."""
    if current_user.is_authenticated:
        services.end_session(current_user.session_id)
    logout_user()
    session.clear()


def current_member() -> Member:
    """The signed-in member; only call from views that require sign-in."""
    return current_user.member  # type: ignore[no-any-return]


def current_actor() -> Actor:
    """The signed-in member as the audit log names them, with the address they came from."""
    return Actor(current_member().id, request.remote_addr or "")


def staff_required(view: F) -> F:
    """Anonymous visitors go to sign in; members who are not staff get 403."""
    return _role_required(view, admin=False)


def admin_required(view: F) -> F:
    return _role_required(view, admin=True)


def _role_required(view: F, *, admin: bool) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from supporters.extensions import login_manager

        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        member = current_member()
        if not (member.is_admin if admin else member.is_staff):
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
