"""A GET writes nothing: every GET route, as every role, with a poll past its closing time.

The one exception is a staff download of personal data opened from the site's own pages: it
writes its audit row (a download followed from elsewhere writes nothing: tests/voting).
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from supporters.audit import AuditEntry
from supporters.db import utcnow
from supporters.extensions import db
from tests.site import ROLES, build_site, furnish, snapshot, urls

# What a browser sends with a link followed on one of the site's own pages.
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
# Downloads that are audited, and the audit row's action.
AUDITED_DOWNLOADS = {"voting.export_votes": "poll.votes_exported"}


def test_no_get_writes_except_a_same_site_downloads_audit_row(app: Flask) -> None:
    site = build_site(app)
    arguments = furnish(site, utcnow())
    clients = {role: site.client(role) for role in ROLES}
    routes = list(urls(app, arguments))
    before = snapshot()

    downloads: list[tuple[str, str]] = []
    for role in ROLES:
        for endpoint, path in routes:
            response = clients[role].get(path, headers=SAME_ORIGIN)
            assert response.status_code < 500, (role, path)
            if endpoint in AUDITED_DOWNLOADS and response.status_code == 200:
                downloads.append((role, endpoint))

    after = snapshot()
    audit = "audit_entries"
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed in ([], [audit]), changed
    assert after[audit][: len(before[audit])] == before[audit]  # nothing changed, only added
    known = max((row[0] for row in before[audit]), default=0)  # the id comes first
    added = db.session.scalars(
        sa.select(AuditEntry).where(AuditEntry.id > known).order_by(AuditEntry.id)
    ).all()
    people = {role: person.id for role, person in site.people.items()}
    assert [(entry.actor_id, entry.action) for entry in added] == [
        (people[role], AUDITED_DOWNLOADS[endpoint]) for role, endpoint in downloads
    ]
    assert {role for role, _ in downloads} == {"staff", "admin"}
