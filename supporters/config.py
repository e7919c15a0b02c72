"""Configuration: defaults, then ``SUPPORTERS_*`` environment variables, then a test mapping.

Every setting a newsroom may change is listed in :data:`SETTINGS` with its type, so the README's
table, the environment parser and the start-up validation speak of the same names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "SUPPORTERS_"

#: Where links lead outside a request (commands) in development when no base URL is set:
#: ``flask run``'s own address.
DEVELOPMENT_BASE_URL = "http://127.0.0.1:5000"


class ConfigError(RuntimeError):
    """A setting is missing or wrong; raised by :func:`validate` at start-up."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


#: The longest notice, in days, of any time-based message (dunning, renewal notices).
MAX_NOTICE_DAYS = 365
#: How many dunning days a schedule may have.
MAX_DUNNING_DAYS = 10


def parse_days(value: str) -> list[int]:
    """Whole numbers of days, comma-separated, in any order and repeated: sorted, once each."""
    try:
        return sorted({int(part) for part in _list(value)})
    except ValueError as exc:
        raise ValueError(f"expected whole numbers of days, comma-separated, got {value!r}") from exc


@dataclass(frozen=True)
class Setting:
    """One configurable value: its Flask config key, parser, default and meaning."""

    key: str
    parse: Callable[[str], Any]
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", str, "development", "`production` turns on the strict start-up checks."),
    Setting(
        "SECRET_KEY", str, None, "Signs sessions and hashes sign-in codes. Required in production."
    ),
    Setting(
        "DATABASE_URL", str, None, "SQLAlchemy URL; default: a SQLite file in the instance folder."
    ),
    Setting("SITE_NAME", str, "Supporters", "The newsroom's name, shown in pages and emails."),
    Setting(
        "BASE_URL",
        str,
        "",
        "Public URL of emailed links and Stripe's return addresses; HTTPS, required in production. "
        "Empty in development: links follow the address each request came to.",
    ),
    Setting("CURRENCY", str, "EUR", "Default ISO 4217 currency of tiers and amounts."),
    Setting("DEFAULT_LOCALE", str, "en", "Locale when the browser asks for none we speak."),
    Setting("MAIL_FROM", str, "Supporters <no-reply@localhost>", "From header of every message."),
    Setting(
        "SMTP_HOST",
        str,
        "",
        "SMTP server. Required in production; empty in development: messages are printed.",
    ),
    Setting("SMTP_PORT", int, 587, "SMTP port."),
    Setting("SMTP_USERNAME", str, "", "SMTP user name, if the server wants one."),
    Setting("SMTP_PASSWORD", str, "", "SMTP password."),
    Setting("SMTP_SECURITY", str, "starttls", "`starttls`, `ssl` or `none`."),
    Setting("SMTP_TIMEOUT", int, 10, "Seconds to wait for the SMTP server."),
    Setting(
        "MAIL_KEEP_DAYS",
        float,
        90.0,
        "Days a sent (or refused) message is kept, for the staff's list of recent emails.",
    ),
    Setting(
        "DUNNING_DAYS",
        parse_days,
        [0, 3, 7],
        "Days of the grace period on which a patron whose renewal failed is emailed a link to "
        "fix their card (0: the day it fails).",
    ),
    Setting(
        "RENEWAL_NOTICE_DAYS",
        int,
        14,
        "Days before a yearly renewal that the patron is told its date and amount.",
    ),
    Setting(
        "PATREON_REMINDER_DAYS",
        parse_days,
        [7, 21],
        "Days after the invitation to move from Patreon on which a patron who has not moved "
        "yet is reminded, with a fresh link (empty: no reminders).",
    ),
    Setting("STRIPE_SECRET_KEY", str, "", "Stripe secret key (sk_test_… or sk_live_…)."),
    Setting("STRIPE_PUBLISHABLE_KEY", str, "", "Stripe publishable key."),
    Setting(
        "STRIPE_WEBHOOK_SECRET",
        _list,
        [],
        "Webhook signing secrets, comma-separated during a rotation.",
    ),
    Setting("STRIPE_API_BASE", str, "", "Point the Stripe SDK at another server (tests, staging)."),
    Setting(
        "RATELIMIT_STORAGE_URL", str, "memory://", "Rate-limit storage; `redis://…` in production."
    ),
    Setting(
        "PROXY_COUNT", int, 0, "Reverse proxies in front of the app whose X-Forwarded-* to trust."
    ),
    Setting("MINIMUM_AMOUNT", int, 300, "Smallest custom amount, in minor units of the currency."),
    Setting("MAXIMUM_AMOUNT", int, 1_000_000, "Largest amount accepted online, in minor units."),
    Setting(
        "GRACE_PERIOD_DAYS", int, 7, "Days a past-due patron keeps benefits while Stripe retries."
    ),
    Setting(
        "PUBLIC_CACHE_SECONDS",
        float,
        1.0,
        "Seconds each worker serves an embed, an API answer or the support page (to readers not "
        "signed in) again before reading the figures anew (0: every request reads them).",
    ),
    Setting(
        "BENCH_ROUTES", _bool, False, "Adds /bench/hello for bench/ scripts; never in production."
    ),
    Setting(
        "JOBS_MAX_ATTEMPTS",
        int,
        10,
        "Tries of a background job before it is dead (kept, with its error, for staff to retry).",
    ),
    Setting(
        "JOBS_RETRY_BASE_SECONDS",
        float,
        10.0,
        "A failed job's first retry comes after half to all of this many seconds; the wait "
        "doubles each time.",
    ),
    Setting("JOBS_RETRY_CAP_SECONDS", float, 3600.0, "Longest wait before a job's next try."),
    Setting(
        "JOBS_LEASE_SECONDS",
        float,
        300.0,
        "A job whose worker stopped mid-job is taken again this long after the worker's last sign "
        "of life.",
    ),
    Setting("JOBS_POLL_SECONDS", float, 1.0, "How often an idle worker looks for due jobs."),
    Setting("JOBS_KEEP_DONE_DAYS", float, 7.0, "Days a finished job is kept before it is pruned."),
    Setting(
        "RECONCILE_MINUTES",
        int,
        60,
        "Workers compare every customer with Stripe this often (minutes; 0: never).",
    ),
    Setting(
        "DEVELOPMENT_WORKER",
        _bool,
        True,
        "`flask run` also runs background jobs, in a thread (never in production).",
    ),
)

_SETTINGS_BY_KEY = {setting.key: setting for setting in SETTINGS}


def defaults() -> dict[str, Any]:
    """Return the built-in defaults as Flask config keys."""
    values: dict[str, Any] = {s.key: s.default for s in SETTINGS}
    values.update(
        # Flask and extension settings derived from ours, overridable by the test mapping.
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=1024 * 1024,
        SQLALCHEMY_ENGINE_OPTIONS={},
        BABEL_DEFAULT_LOCALE="en",
        BABEL_DEFAULT_TIMEZONE="UTC",
        LANGUAGES=["en"],
        SIGN_IN_TTL_SECONDS=15 * 60,
        SIGN_IN_CODE_ATTEMPTS=5,
        SIGN_IN_LIMIT_PER_EMAIL="5 per 15 minutes; 20 per day",
        SIGN_IN_LIMIT_PER_IP="30 per hour",
        SIGN_IN_ATTEMPT_LIMIT_PER_IP="60 per hour",
        # Said outright: the limiter is one object, and would otherwise keep the last app's choice.
        RATELIMIT_ENABLED=True,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    return values


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """Parse every ``SUPPORTERS_*`` variable that names a known setting.

    :raises ConfigError: a variable is set to a value its setting cannot parse.
    """
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        setting = _SETTINGS_BY_KEY.get(name[len(ENV_PREFIX) :])
        if setting is None:
            continue
        try:
            values[setting.key] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from exc
    return values


def load(instance_path: str, test_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge defaults, the instance's ``supporters.cfg`` (if any), the environment and tests."""
    values = defaults()
    instance_file = os.path.join(instance_path, "supporters.cfg")
    if os.path.exists(instance_file):
        scope: dict[str, Any] = {}
        with open(instance_file, encoding="utf-8") as fh:
            exec(compile(fh.read(), instance_file, "exec"), scope)  # noqa: S102 - operator's own file
        values.update({k: v for k, v in scope.items() if k.isupper()})
    values.update(from_environ(os.environ))
    if test_config:
        values.update(test_config)
    return _derive(values, instance_path)


def _derive(values: dict[str, Any], instance_path: str) -> dict[str, Any]:
    """Fill settings that follow from others (database URL, cookie security, secret key)."""
    values["IS_PRODUCTION"] = values["ENV"] == "production"
    if not values.get("SQLALCHEMY_DATABASE_URI"):
        url = values.get("DATABASE_URL") or "sqlite:///" + os.path.join(
            instance_path, "supporters.sqlite3"
        )
        # Heroku-style URLs name the scheme "postgres://"; SQLAlchemy wants psycopg spelled out.
        if url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url[len("postgres://") :]
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        values["SQLALCHEMY_DATABASE_URI"] = url
    if values["IS_PRODUCTION"]:
        values.setdefault("SESSION_COOKIE_SECURE", True)
        values.setdefault("REMEMBER_COOKIE_SECURE", True)
        values.setdefault("PREFERRED_URL_SCHEME", "https")
    elif not values.get("SECRET_KEY"):
        # Development only: a fixed, loudly named key keeps sessions across restarts.
        values["SECRET_KEY"] = "development-only-not-secret"
    values["RATELIMIT_STORAGE_URI"] = values["RATELIMIT_STORAGE_URL"]
    values["CURRENCY"] = str(values["CURRENCY"]).upper()
    # Links follow the request's own address only when no base URL was set (and never in
    # production, which refuses to start without one): see web.base_url().
    values["BASE_URL_IS_SET"] = bool(values["BASE_URL"])
    values["BASE_URL"] = str(values["BASE_URL"] or DEVELOPMENT_BASE_URL).rstrip("/")
    return values


def problems_with(values: Mapping[str, Any], *, production: bool | None = None) -> list[str]:
    """Every reason start-up refuses these settings, one sentence each naming the variable.

    ``production=True`` checks them as a production start-up would, whatever ``ENV`` says.
    """
    if production is None:
        production = bool(values["IS_PRODUCTION"])
    problems: list[str] = []
    if values["ENV"] not in {"development", "production"}:
        problems.append(
            f"{ENV_PREFIX}ENV must be 'development' or 'production', not {values['ENV']!r}."
        )
    base = urlsplit(values["BASE_URL"])
    if base.scheme not in {"http", "https"} or not base.netloc:
        problems.append(f"{ENV_PREFIX}BASE_URL must be an absolute http(s) URL.")
    if len(values["CURRENCY"]) != 3 or not values["CURRENCY"].isalpha():
        problems.append(f"{ENV_PREFIX}CURRENCY must be a three-letter ISO 4217 code.")
    if values["SMTP_SECURITY"] not in {"starttls", "ssl", "none"}:
        problems.append(f"{ENV_PREFIX}SMTP_SECURITY must be starttls, ssl or none.")
    if any(not 0 <= day <= MAX_NOTICE_DAYS for day in values["DUNNING_DAYS"]):
        problems.append(f"{ENV_PREFIX}DUNNING_DAYS must be days from 0 to {MAX_NOTICE_DAYS}.")
    if len(values["DUNNING_DAYS"]) > MAX_DUNNING_DAYS:
        problems.append(f"{ENV_PREFIX}DUNNING_DAYS may name at most {MAX_DUNNING_DAYS} days.")
    if not 1 <= values["RENEWAL_NOTICE_DAYS"] <= MAX_NOTICE_DAYS:
        problems.append(f"{ENV_PREFIX}RENEWAL_NOTICE_DAYS must be from 1 to {MAX_NOTICE_DAYS}.")
    if any(not 1 <= day <= MAX_NOTICE_DAYS for day in values["PATREON_REMINDER_DAYS"]):
        problems.append(
            f"{ENV_PREFIX}PATREON_REMINDER_DAYS must be days from 1 to {MAX_NOTICE_DAYS}."
        )
    if len(values["PATREON_REMINDER_DAYS"]) > MAX_DUNNING_DAYS:
        problems.append(
            f"{ENV_PREFIX}PATREON_REMINDER_DAYS may name at most {MAX_DUNNING_DAYS} days."
        )
    # A notice is known to have been sent while its message is kept: past that, it could go again.
    longest_notice = max([*values["DUNNING_DAYS"], values["RENEWAL_NOTICE_DAYS"]]) + 1
    if values["MAIL_KEEP_DAYS"] < longest_notice:
        problems.append(
            f"{ENV_PREFIX}MAIL_KEEP_DAYS must be at least {longest_notice}: sent notices are "
            "remembered by their messages, for longer than the dunning and renewal notice days."
        )
    for key in (
        "MAIL_KEEP_DAYS",
        "JOBS_MAX_ATTEMPTS",
        "JOBS_RETRY_BASE_SECONDS",
        "JOBS_RETRY_CAP_SECONDS",
        "JOBS_LEASE_SECONDS",
        "JOBS_POLL_SECONDS",
        "JOBS_KEEP_DONE_DAYS",
    ):
        if not values[key] > 0:
            problems.append(f"{ENV_PREFIX}{key} must be more than 0.")
    if values["RECONCILE_MINUTES"] < 0:
        problems.append(f"{ENV_PREFIX}RECONCILE_MINUTES must be 0 (never) or more.")
    if production:
        secret = values.get("SECRET_KEY") or ""
        if len(secret) < 32:
            problems.append(
                f"{ENV_PREFIX}SECRET_KEY must be set to a random value of at least 32 characters "
                "in production (python -c 'import secrets; print(secrets.token_urlsafe(48))')."
            )
        if not values["STRIPE_SECRET_KEY"]:
            problems.append(
                f"{ENV_PREFIX}STRIPE_SECRET_KEY must be set in production: "
                "the demo checkout moves no money and refuses to run there."
            )
        if not values["STRIPE_WEBHOOK_SECRET"]:
            problems.append(f"{ENV_PREFIX}STRIPE_WEBHOOK_SECRET must be set in production.")
        if not values["SMTP_HOST"]:
            problems.append(
                f"{ENV_PREFIX}SMTP_HOST must be set in production: without a mail server, "
                "sign-in links and codes would be printed to the log instead of sent."
            )
        if values["BENCH_ROUTES"]:
            problems.append(
                f"{ENV_PREFIX}BENCH_ROUTES is for benchmarks on loopback, not production."
            )
        if not values["BASE_URL_IS_SET"]:
            problems.append(
                f"{ENV_PREFIX}BASE_URL must be set in production to the site's public https:// "
                "address: emailed links and Stripe's return addresses are built on it."
            )
        elif base.scheme != "https":
            problems.append(f"{ENV_PREFIX}BASE_URL must use https:// in production.")
    return problems


def warnings_about(values: Mapping[str, Any]) -> list[str]:
    """Settings a production start-up accepts but that are probably wrong there."""
    found: list[str] = []
    if str(values["RATELIMIT_STORAGE_URI"]).startswith("memory://"):
        found.append(
            "Rate limits are kept in memory: with several workers each counts alone. "
            f"Set {ENV_PREFIX}RATELIMIT_STORAGE_URL=redis://… to share them."
        )
    if not values["PROXY_COUNT"]:
        found.append(
            f"{ENV_PREFIX}PROXY_COUNT is 0: behind a reverse proxy (as the README deploys it) "
            "every reader has the proxy's address, and the per-IP limits count them all together."
        )
    return found


def validate(values: Mapping[str, Any]) -> None:
    """Refuse to start with settings that would be insecure or broken.

    :raises ConfigError: with one line per problem, naming the variable to set.
    """
    problems = problems_with(values)
    if problems:
        raise ConfigError("Cannot start supporters:\n  " + "\n  ".join(problems))
