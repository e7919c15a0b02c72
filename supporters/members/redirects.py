"""Where a reader may be sent after signing in: a plain path on this site, decided in one place.

A ``next`` value comes from a link anyone can write, is stored with the sign-in request and ends
up in a ``Location`` header. Browsers read that header generously: they drop tabs and line
breaks, read a backslash as a slash and ``//host`` or ``https:host`` as another site, and some
servers decode ``%2F`` before routing. So the value is accepted or refused as a whole, never
repaired: what passes here is exactly what is stored and what the browser is sent to.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

#: The longest target kept (the ``next_url`` column of a sign-in request).
MAX_LENGTH = 500

# Visible ASCII but the backslash. Everything else (control characters, every kind of space,
# non-ASCII look-alikes) is refused rather than percent-encoded: our own URLs never hold any.
_ALLOWED = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"\\"}


def safe_next(target: str | None) -> str:
    """Return ``target`` when it is a path on this site, else ``""`` (go to the default page).

    Used as the ``next`` field's filter, so the form, the stored request and the redirect all
    hold the same checked value.
    """
    if not target or len(target) > MAX_LENGTH or not _is_local_path(target):
        return ""
    # What some server or proxy on the way may make of the path once it is percent-decoded.
    path = urlsplit(target).path
    for _ in range(3):
        decoded = unquote(path)
        if decoded == path:
            return target
        if not _is_local_path(decoded):
            return ""
        path = decoded
    return ""  # encoded three times over: no link of ours looks like that


def _is_local_path(value: str) -> bool:
    """A path from this site's root: ``/`` not followed by a second slash, no scheme, no host."""
    if not set(value) <= _ALLOWED:
        return False
    if not value.startswith("/") or value.startswith("//"):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc
