"""CSV downloads, streamed: rows are written as they are read, a chunk at a time.

Every CSV the app offers (staff exports, a poll's votes) goes through :func:`stream_csv`, so
each cell is made safe the same way: text that a spreadsheet would run as a formula (starting
with ``=``, ``+``, ``-``, ``@``, tab or carriage return) gets a leading apostrophe, since names,
addresses and pitches are typed by readers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from flask import Response, stream_with_context

from supporters import numbers

FLUSH_AT = 64 * 1024
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """One value as it goes into a CSV cell."""
    kind = type(value)
    if kind is str:
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    if value is None:
        return ""
    if kind is dt.datetime:
        return value.astimezone(dt.UTC).isoformat()
    if kind in (int, Decimal, dt.date, bool):
        return value
    if kind is Fraction:
        return numbers.decimal(value, 4)
    return cell(str(value))


def stream_csv(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """A CSV download whose body is written while the rows are read (inside the request's
    context, so a generator of rows may read the database as it goes)."""

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for row in rows:
            writer.writerow([cell(value) for value in row])
            if buffer.tell() >= FLUSH_AT:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
