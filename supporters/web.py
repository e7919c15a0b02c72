"""What every response shares: security headers, error pages, template helpers, /healthz."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    has_request_context,
    jsonify,
    render_template,
    request,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from supporters import i18n, params
from supporters.extensions import db, limiter, login_manager

log = logging.getLogger(__name__)

bp = Blueprint("web", __name__)

_BASE_CSP: dict[str, list[str]] = {
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
    "object-src": ["'none'"],
}


def allow_csp(directive: str, *sources: str) -> None:
    """Let this response load from more sources (Stripe's pages need ``https://*.stripe.com``)."""
    extra: dict[str, list[str]] = g.setdefault("csp_extra", {})
    allowed = extra.setdefault(directive, [])
    allowed.extend(source for source in sources if source not in allowed)


def serve_everyone_alike() -> None:
    """This response is the same for every visitor, signed in or not (an embed, the public API).

    Nothing about the visitor is used: not the signed-in member, nor their language (the page
    speaks the site's default one, or the ``lang`` its address asks for). The session cookie
    is not refreshed, so the response sets no cookie and a shared cache may keep it.
    """
    g.is_served_alike = True


def allow_framing(*origins: str) -> None:
    """Let this page be framed by the site itself and by ``origins``; every other page refuses."""
    g.frame_ancestors = ["'self'", *origins]


def is_served_alike() -> bool:
    """Was :func:`serve_everyone_alike` called for this response?"""
    return has_request_context() and bool(g.get("is_served_alike"))


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, left alone by responses served to everyone alike.

    A signed-in member's session is permanent, so Flask would otherwise send its cookie again
    with every response to refresh it (and ``Vary: Cookie``).
    """

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if is_served_alike():
            return
        super().save_session(app, session, response)


def base_url() -> str:
    """The public address that links leaving the site (emails, Stripe's return URLs) start with.

    ``SUPPORTERS_BASE_URL`` whenever it is set, and always in production (which requires it):
    a forged Host header must not send a reader to someone else's site. In development without
    one, the address this request came to, so an app on any port sends readers back to itself;
    outside a request, ``flask run``'s address.
    """
    config = current_app.config
    if config["BASE_URL_IS_SET"] or config["IS_PRODUCTION"] or not has_request_context():
        return str(config["BASE_URL"])
    return request.host_url.rstrip("/")


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute URL on :func:`base_url`, also outside a request (commands print links)."""
    if has_request_context():
        path = url_for(endpoint, **values)
    else:
        adapter = current_app.url_map.bind("", script_name=current_app.config["APPLICATION_ROOT"])
        path = adapter.build(endpoint, values)
    return base_url() + path


def _notice_other_host() -> None:
    """Log, once per host in each worker, a request for a host the base URL does not name.

    Emailed links and Stripe's return addresses lead to the base URL's host: if readers reach
    the site under another name, the setting is probably wrong (``flask doctor`` compares it
    with a host you give). A log line only; this runs on every request and writes nothing.
    """
    host = request.host.lower()
    expected = urlsplit(current_app.config["BASE_URL"]).netloc.lower()
    # Load balancers ask for /healthz by an internal name.
    if host == expected or request.endpoint == "web.healthz":
        return
    noticed: set[str] = current_app.extensions.setdefault("supporters.other_hosts", set())
    if host in noticed or len(noticed) >= 10:  # forged names must not flood the log
        return
    noticed.add(host)
    log.warning(
        "A request arrived for host %r, but SUPPORTERS_BASE_URL is %s: emailed links and "
        "Stripe's return addresses lead there. If readers use %r, correct the setting.",
        host,
        current_app.config["BASE_URL"],
        host,
    )


def is_same_origin() -> bool:
    """Did this request come from one of this site's own pages, not from a link elsewhere?

    Browsers say so in ``Sec-Fetch-Site``; older ones that do not send it send an ``Origin``
    or ``Referer`` (``Referrer-Policy: same-origin`` keeps it on our own links), compared with
    the configured public address. Anything else is not: a link on another site, in a chat or
    an email, a typed address, or a client that says nothing. A GET that writes an audit row
    (a staff download) does so only when this is true, so another site cannot make it write.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    return bool(source) and _origin(source) == _origin(current_app.config["BASE_URL"])


def _origin(url: str) -> tuple[str, str]:
    """A URL's scheme and host (with its port), as browsers compare origins."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _content_security_policy() -> str:
    policy = {key: list(values) for key, values in _BASE_CSP.items()}
    for directive, sources in g.get("csp_extra", {}).items():
        policy.setdefault(directive, []).extend(sources)
    if "frame_ancestors" in g:
        policy["frame-ancestors"] = list(g.frame_ancestors)
    return "; ".join(f"{key} {' '.join(values)}" for key, values in policy.items())


def _secure_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", _content_security_policy())
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if "frame_ancestors" not in g:  # X-Frame-Options knows no list of sites: CSP says it
        headers.setdefault("X-Frame-Options", "DENY")
    # Sign-in links carry a token in the path: never hand it to another site.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if current_app.config["IS_PRODUCTION"]:
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    if g.get("no_store") or (
        not g.get("is_served_alike") and current_user and current_user.is_authenticated
    ):
        headers["Cache-Control"] = "no-store"
        headers.add_header("Vary", "Cookie")
    return response


def _leave_the_database() -> None:
    """Make the rest of this request independent of the database, before an error page.

    The error may have broken the request's transaction (a failed write, a lock timeout, a
    dropped connection): it is rolled back first, so that nothing half-written is kept, and
    if even the rollback fails the connection is thrown away. Every row the session held is
    then expired, so the page is rendered as for a visitor: neither the signed-in member nor
    their subscription is read again (the session cookie is left alone, so they are still
    signed in on the next page), and the page is never cached.
    """
    try:
        db.session.rollback()
    except sa.exc.SQLAlchemyError:
        log.warning("Rolling back before an error page failed; connection discarded", exc_info=True)
        db.session().invalidate()
    # Flask-Login keeps the request's user on ``g``: with a visitor there, its user loader does
    # not run again and no expired member is read while the page renders.
    login_manager._update_request_context_with_user()
    g.no_store = True


def _refuse_unsafe_text() -> None:
    """Turn a request away whose query string or form the database could not store as text."""
    if params.has_unsafe_text(request):
        abort(
            400,
            _(
                "The address or the form holds characters we cannot accept: invisible control "
                "characters, or text that is not UTF-8. Remove them and try again."
            ),
        )


def _render_error(code: int, title: str, message: str) -> tuple[str, int]:
    """The error page; it needs no database (call :func:`_leave_the_database` first)."""
    page = render_template(
        "errors/error.html", code=code, title=title, message=message, is_error_page=True
    )
    return page, code


def _handle_http_error(error: HTTPException) -> tuple[str, int] | HTTPException:
    if error.code is None or error.code < 400:
        return error
    # First: the titles below are translated, and choosing the language may read the member.
    _leave_the_database()
    titles = {
        400: _("Bad request"),
        403: _("Not allowed"),
        404: _("Page not found"),
        405: _("Method not allowed"),
        413: _("Too much data"),
        429: _("Too many attempts"),
    }
    messages = {
        403: _("Your account cannot open this page."),
        404: _("There is nothing at this address. Check the link, or start from the home page."),
        413: _("The form sent more data than we accept."),
        429: _("You have tried this too often. Wait a few minutes, then try again."),
    }
    code = error.code
    return _render_error(
        code,
        titles.get(code, error.name),
        messages.get(code) or error.description or "",
    )


def _handle_csrf_error(error: CSRFError) -> tuple[str, int]:
    _leave_the_database()
    return _render_error(
        400,
        _("The form expired"),
        _("The form was open too long or came from another site. Go back, reload and try again."),
    )


def _handle_server_error(error: Exception) -> tuple[str, int]:
    # The traceback goes to the log, never to the browser.
    original = getattr(error, "original_exception", error)
    log.error("Unhandled error on %s %s", request.method, request.path, exc_info=original)
    _leave_the_database()
    return _render_error(
        500,
        _("Something went wrong"),
        _("We could not finish this request and nothing was changed. Please try again later."),
    )


@bp.get("/healthz")
@limiter.exempt
def healthz() -> tuple[Response, int]:
    """Tell a load balancer whether this worker can reach its database."""
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        log.exception("Health check: database unreachable")
        db.session.rollback()
        return jsonify(status="error", database="unreachable"), 503
    return jsonify(status="ok", database="ok"), 200


def _bench_hello() -> str:
    """The benchmarks' baseline: the same app, server and headers, no database or template."""
    return "hello"


def _bench_signed_in() -> str:
    """A second baseline: what a signed-in form post costs before its view does any work.

    The session cookie, the CSRF token, the session row with its member and subscription, and
    the end of the transaction; no template, no write.
    """
    return "signed in"


_LARGE_BODIES = "supporters.large_bodies"


def allow_large_body(app: Flask, endpoint: str, max_bytes: int) -> None:
    """Let one route read a body larger than ``MAX_CONTENT_LENGTH`` (a file upload).

    The limit must be raised before anything reads the body (the text check and the CSRF check
    do, before any view): a feature registers its route here from ``create_app``.
    """
    app.extensions.setdefault(_LARGE_BODIES, {})[endpoint] = max_bytes


def _raise_body_limit() -> None:
    limit = current_app.extensions.get(_LARGE_BODIES, {}).get(request.endpoint)
    if limit is not None:
        request.max_content_length = limit


def init_app(app: Flask) -> None:
    """Install headers, error handlers and template helpers on the app."""
    app.register_blueprint(bp)
    app.session_interface = _SessionInterface()
    if app.config["BENCH_ROUTES"]:
        app.add_url_rule("/bench/hello", "bench_hello", limiter.exempt(_bench_hello))
        app.add_url_rule(
            "/bench/signed-in",
            "bench_signed_in",
            login_required(_bench_signed_in),
            methods=["POST"],
        )
    # First of all: nothing else (the CSRF check, the rate limits' keys, a view) may read a
    # value before it is known to be text the database can keep.
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_unsafe_text)
    # Before even that: a route allowed a large body must not be refused while it is read.
    app.before_request_funcs[None].insert(0, _raise_body_limit)
    if app.config["BASE_URL_IS_SET"]:
        app.before_request(_notice_other_host)
    app.after_request(_secure_headers)
    app.register_error_handler(CSRFError, _handle_csrf_error)
    app.register_error_handler(HTTPException, _handle_http_error)
    app.register_error_handler(InternalServerError, _handle_server_error)
    app.jinja_env.add_extension("jinja2.ext.do")
    app.jinja_env.globals.update(
        money=i18n.money,
        format_date=i18n.date,
        format_datetime=i18n.datetime,
        site_name=lambda: current_app.config["SITE_NAME"],
        get_locale=get_locale,
    )
