"""Factory functions for test data: each makes exactly what a test names, flushed, uncommitted."""

from __future__ import annotations

from typing import Any

from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Member, Role

_counter = iter(range(1, 10**9))


def make_member(
    email: str | None = None, *, role: Role = Role.MEMBER, verified: bool = True, **fields: Any
) -> Member:
    n = next(_counter)
    member = Member(
        email=(email or f"reader{n}@example.org").lower(),
        display_name=fields.pop("display_name", f"Reader {n}"),
        role=role,
        email_verified_at=utcnow() if verified else None,
        **fields,
    )
    db.session.add(member)
    db.session.flush()
    return member
