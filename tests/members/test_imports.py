"""Accounts imported in bulk: stored as a sign-up stores them, or not at all."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters.db import utcnow
from supporters.extensions import db
from supporters.members import services
from supporters.members.imports import ImportedMember, import_members
from supporters.members.models import Member, Role


def test_imported_readers_sign_in_to_their_own_accounts(app: Flask) -> None:
    joined = utcnow().replace(microsecond=0) - dt.timedelta(days=400)

    reader_id, editor_id = import_members(
        [
            ImportedMember(" Anna.Schmidt@Example.ORG ", " Anna Schmidt ", joined),
            ImportedMember("editor@example.org", "Eda", joined, Role.STAFF),
        ]
    )

    reader = db.session.get(Member, reader_id)
    assert reader is not None
    assert (reader.email, reader.display_name) == ("anna.schmidt@example.org", "Anna Schmidt")
    assert reader.created_at == reader.email_verified_at == joined
    editor = db.session.get(Member, editor_id)
    assert editor is not None and editor.role is Role.STAFF
    issued = services.request_sign_in("anna.schmidt@example.org")
    assert not issued.is_new_member and issued.request.member_id == reader_id


def test_a_malformed_address_imports_nobody(app: Flask) -> None:
    joined = utcnow()

    with pytest.raises(services.InvalidEmail):
        import_members(
            [ImportedMember("anna@example.org", "", joined), ImportedMember("anna@", "", joined)]
        )

    assert db.session.scalar(sa.select(sa.func.count()).select_from(Member)) == 0
