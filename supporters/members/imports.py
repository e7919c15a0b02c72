"""Accounts brought in bulk: from another membership system, or the demo's invented readers.

Thousands of accounts a statement. Addresses are checked and stored as a sign-up's are, and the
database refuses one that is taken. Services flush and never commit; the command commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from supporters.db import insert_many
from supporters.members.models import Member, Role
from supporters.members.services import normalize_email


class ImportedMember(NamedTuple):
    """An account as it stood elsewhere: its address (proven there), name, role and joining."""

    email: str
    display_name: str
    joined_at: dt.datetime
    role: Role = Role.MEMBER


def import_members(members: Sequence[ImportedMember]) -> Sequence[int]:
    """Add the accounts in one statement; their new ids, in the order given.

    Each address counts as verified since the account joined: it was proven where it came from.

    :raises InvalidEmail: an address is malformed; nothing was written.
    :raises sqlalchemy.exc.IntegrityError: an address is taken, or given twice; roll back.
    """
    rows = [
        {
            "email": normalize_email(member.email),
            "display_name": member.display_name.strip(),
            "role": member.role,
            "email_verified_at": member.joined_at,
            "session_version": 1,
            "locale": None,
            "created_at": member.joined_at,
        }
        for member in members
    ]
    return insert_many(Member, rows, returning_ids=True)
