"""Patreon fixtures: the export in Patreon's shape, the local tiers it maps to, a fixed clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from supporters.patreon import services
from tests.billing.conftest import (  # noqa: F401  (the fake Stripe, for the invitation)
    fake_stripe,
    stripe_app,
    synced_tiers,
    webhooks,
)
from tests.voting.conftest import clock  # noqa: F401  (the voting clock, frozen by hand)
from tests.voting.factories import make_tier

EXPORT = Path(__file__).parent / "members_export.csv"
#: When the fixture's export was taken: paid periods run on from here.
EXPORTED_AT = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def import_clock(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """Imports run as if on the day the export was taken."""
    monkeypatch.setattr(services, "utcnow", lambda: EXPORTED_AT)
    return EXPORTED_AT


@pytest.fixture
def tiers(app: object) -> dict[str, int]:
    """A €5 and a €10 tier, as the Patreon tiers of the export suggest (their ids)."""
    return {
        "reader": make_tier("Reader", monthly=500, slug="reader").id,
        "insider": make_tier("Insider", monthly=1000, slug="insider").id,
    }
