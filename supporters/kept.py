"""What each worker keeps for a moment: answers that are the same for everyone, drawn once a
``PUBLIC_CACHE_SECONDS`` (a second by default) and served again without the database.

Under article traffic most requests for an embed, an API answer or the support page then cost
what a trivial endpoint costs, and a payment or a ballot shows within that second. A database
round trip costs such a request more than all the rest of its work (``bench/embed_bench.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any, TypeVar

from flask import current_app

T = TypeVar("T")

#: A worker keeps at most this many answers (one per answer, language and site address).
_KEPT_MAX = 64
_KEPT = "supporters.kept"


def kept(key: tuple[str, ...], make: Callable[[], T]) -> T:
    """``make()``, or what it gave within the last ``PUBLIC_CACHE_SECONDS`` in this worker."""
    seconds = float(current_app.config["PUBLIC_CACHE_SECONDS"])
    if seconds <= 0:
        return make()
    store: dict[tuple[str, ...], tuple[float, Any]] = current_app.extensions.setdefault(_KEPT, {})
    now = monotonic()
    entry = store.get(key)
    if entry is not None and entry[0] > now:
        return entry[1]  # type: ignore[no-any-return]
    value = make()
    if len(store) >= _KEPT_MAX:
        store.clear()
    store[key] = (now + seconds, value)
    return value
