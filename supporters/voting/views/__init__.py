"""The voting pages: one blueprint, ``voting``, under /polls.

- ``blueprint.py``: the blueprint and what every page shares (loading, refusals' status codes);
- ``public.py``: polls, ballots, proposals and "You asked, we reported", for readers and patrons;
- ``manage_polls.py`` and ``manage_topics.py``: the staff's pages under /polls/manage/.

Each view parses its form, calls a service, commits once and redirects (or renders with the
status code that fits: 400 bad input, 403 not allowed, 404 unknown or draft, 409 wrong state).
"""

from __future__ import annotations

# Importing the page modules adds their routes to the blueprint the app registers.
from supporters.voting.views import manage_polls, manage_topics, public
from supporters.voting.views.blueprint import bp

__all__ = ["bp", "manage_polls", "manage_topics", "public"]
