"""What the app accepts from a request: text a person could have typed, integers that fit a column.

PostgreSQL refuses NUL in text and integers beyond its ``integer`` type; Werkzeug, reading a
request, keeps both (and keeps bytes that were not UTF-8 as ``%FF``, or as U+FFFD in a multipart
body). Left alone, such a value fails in the database after the view has begun its work: a 500.
So it is turned away at the door: ``web`` asks :func:`has_unsafe_text` of every request, the URL
converters installed by :func:`init_app` match only integers in range and text without control
characters, and views read integers from the query string with :func:`int_arg`.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, Request, abort, request
from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter, UnicodeConverter, ValidationError

#: The range of PostgreSQL's ``integer``, the type of every id and count (SQLite's is wider).
DB_INT_MIN = -(2**31)
DB_INT_MAX = 2**31 - 1

# C0 and C1 control characters and DEL, which nobody types; lone surrogates, which no valid
# UTF-8 encodes; U+FFFD, which is what Werkzeug leaves of bytes in a multipart body that were
# not UTF-8. A text area sends line breaks and tabs: only those, and only in form values, pass.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffd]")
_UNSAFE_IN_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffd]")
_URLENCODED = "application/x-www-form-urlencoded"
_FORM_TYPES = (_URLENCODED, "multipart/form-data")
_INTEGER = re.compile(r"-?[0-9]{1,12}")


def is_safe_text(value: str, *, multiline: bool = False) -> bool:
    """Whether text holds only characters a person could have typed.

    ``multiline`` also allows the line breaks and tabs a text area sends.
    """
    return (_UNSAFE_IN_MULTILINE if multiline else _UNSAFE).search(value) is None


def _is_utf8(urlencoded: bytes) -> bool:
    """Whether percent-decoded text is UTF-8 (Werkzeug would keep ``%FF`` as those 3 letters)."""
    try:
        unquote_to_bytes(urlencoded).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _all_safe(items: Iterable[tuple[str | None, str]], *, multiline_values: bool) -> bool:
    # A multipart part whose header a line break cut short comes with no name at all.
    return all(
        key is not None and is_safe_text(key) and is_safe_text(value, multiline=multiline_values)
        for key, value in items
    )


def has_unsafe_text(req: Request) -> bool:
    """Whether the query string or the form holds text that was not UTF-8, or a character
    nobody types: NUL and the other control characters (a form value may break lines).

    Uploaded files are not looked at, nor a body that is not a form: the webhook's JSON is
    checked as raw bytes against its signature.
    """
    if req.query_string and not (
        _is_utf8(req.query_string) and _all_safe(req.args.items(multi=True), multiline_values=False)
    ):
        return True
    if req.mimetype not in _FORM_TYPES:
        return False
    # Werkzeug reads an urlencoded body that is not UTF-8 as an empty form, without a word.
    if req.mimetype == _URLENCODED and not _is_utf8(req.get_data()):
        return True
    return not _all_safe(req.form.items(multi=True), multiline_values=True)


def parse_int(text: str, *, minimum: int = DB_INT_MIN, maximum: int = DB_INT_MAX) -> int | None:
    """An integer written in ASCII digits within [minimum, maximum]; None for anything else."""
    match = _INTEGER.fullmatch(text.strip())
    if match is None:
        return None
    value = int(match.group())
    return value if minimum <= value <= maximum else None


def int_arg(name: str, default: int, *, minimum: int = 0, maximum: int = DB_INT_MAX) -> int:
    """An integer from the query string (``?after=120``); ``default`` when absent or empty.

    :raises werkzeug.exceptions.BadRequest: not a whole number within [minimum, maximum].
    """
    text = request.args.get(name, "")
    if not text:
        return default
    value = parse_int(text, minimum=minimum, maximum=maximum)
    if value is None:
        abort(
            400,
            _(
                "This address is not valid: %(name)s must be a whole number from %(min)d to "
                "%(max)d.",
                name=name,
                min=minimum,
                max=maximum,
            ),
        )
    return value


class DatabaseIntConverter(IntegerConverter):
    """``<int:id>``: ASCII digits within PostgreSQL's ``integer``; any other number is a 404."""

    regex = r"[0-9]+"

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.min = DB_INT_MIN if self.min is None else builtins.max(self.min, DB_INT_MIN)
        self.max = DB_INT_MAX if self.max is None else builtins.min(self.max, DB_INT_MAX)


class SafeTextConverter(UnicodeConverter):
    """``<name>``: one path segment without control characters; any other is a 404."""

    def to_python(self, value: str) -> Any:
        if not is_safe_text(value):
            raise ValidationError()
        return value


def init_app(app: Flask) -> None:
    """Make the URL converters checked ones, before any route is added."""
    app.url_map.converters.update(
        int=DatabaseIntConverter, default=SafeTextConverter, string=SafeTextConverter
    )
