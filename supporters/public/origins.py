"""Which sites may frame the embeds and read the API from a browser: cleaned, stored, audited.

An origin is what browsers compare: a scheme, a host and a port (``https://news.example``,
``http://127.0.0.1:8080``). What an admin types is cleaned to that form (lower case, no
trailing slash, the scheme's default port left out) before it is checked and stored, so the
same site cannot be listed twice under two spellings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters import audit
from supporters.audit import Actor
from supporters.extensions import db
from supporters.public.models import EmbedOrigin

_DEFAULT_PORTS = {"https": 443, "http": 80}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class InvalidOrigin(ValueError):
    """What an admin typed is not an origin; the message says why, fit to show."""


def clean_origin(text: str) -> str:
    """``https://News.Example/`` as browsers send it: ``https://news.example``.

    :raises InvalidOrigin: not ``http``/``https``, no host, or a path, query or user name.
    """
    text = text.strip()
    if not text:
        raise InvalidOrigin(_("Enter the address of a site, such as https://news.example."))
    if "://" not in text:
        raise InvalidOrigin(_("Start the address with https:// (or http://)."))
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidOrigin(_("The port must be a number from 1 to 65535.")) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidOrigin(_("Start the address with https:// (or http://)."))
    if parts.username is not None or parts.password is not None:
        raise InvalidOrigin(_("An origin holds no user name or password."))
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise InvalidOrigin(
            _("Give the site alone, without a path: https://news.example, not a page of it.")
        )
    host = _clean_host(parts.hostname or "")
    if port == 0:
        raise InvalidOrigin(_("The port must be a number from 1 to 65535."))
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _clean_host(host: str) -> str:
    if not host:
        raise InvalidOrigin(_("The address names no site."))
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return f"[{address}]" if address.version == 6 else str(address)
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidOrigin(_("“%(host)s” is not a valid site name.", host=host)) from None
    labels = ascii_host.rstrip(".").split(".")
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidOrigin(_("“%(host)s” is not a valid site name.", host=host))
    return ".".join(labels)


def allowed_origins() -> list[str]:
    """Every allowed origin, in alphabetical order."""
    return list(db.session.scalars(_ORIGINS))


_ORIGINS = sa.select(EmbedOrigin.origin).order_by(EmbedOrigin.origin)


def listed_origins() -> Sequence[EmbedOrigin]:
    """The allowed origins as rows, for the admin page."""
    return db.session.scalars(sa.select(EmbedOrigin).order_by(EmbedOrigin.origin)).all()


def add_origin(text: str, actor: Actor) -> EmbedOrigin:
    """Allow a site to frame the embeds and read the API (audited; the caller commits).

    :raises InvalidOrigin: ``text`` is no origin, or the origin is listed already.
    """
    origin = clean_origin(text)
    exists = db.session.scalar(sa.select(EmbedOrigin.id).where(EmbedOrigin.origin == origin))
    if exists is not None:
        raise InvalidOrigin(_("%(origin)s is allowed already.", origin=origin))
    row = EmbedOrigin(origin=origin)
    db.session.add(row)
    db.session.flush()
    audit.record("embed_origin.added", actor, row, origin=origin)
    return row


def remove_origin(origin_id: int, actor: Actor) -> EmbedOrigin | None:
    """Stop allowing a site (audited; the caller commits). None: it was not listed."""
    row = db.session.get(EmbedOrigin, origin_id)
    if row is None:
        return None
    audit.record("embed_origin.removed", actor, row, origin=row.origin)
    db.session.delete(row)
    db.session.flush()
    return row
