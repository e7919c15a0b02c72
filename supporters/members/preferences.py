"""Which optional mail a member wants, and the signed links that stop it without signing in.

The kinds of optional mail (topics) belong to the features that send them: voting registers
its polls and results, staff its digest, each from ``create_app`` (members import no other
feature). A member's choice is a row of ``mail_preferences``; without one, the topic's default
holds. Every optional message carries a one-click unsubscribe link (RFC 8058) holding a token
signed with the app's secret: it names the member and the topic, and never expires, since an
old message's link must still work. Services flush; the caller commits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from itsdangerous import BadSignature, URLSafeSerializer

from supporters.db import insert_ignoring_conflicts, utcnow
from supporters.extensions import db
from supporters.members.models import MailPreference, Member

_EXTENSION = "supporters.mail_topics"

#: Members asked about in one statement (a message to every patron asks about thousands).
CHUNK = 1000


class InvalidToken(LookupError):
    """An unsubscribe link not made here, or naming a topic there is no longer."""


@dataclasses.dataclass(frozen=True)
class MailTopic:
    """A kind of optional mail a member may stop: its key, and how the account page names it."""

    key: str
    label: Any  # lazy strings: read in the reader's language
    description: Any
    is_wanted_by_default: bool = True
    is_for_staff: bool = False


def register_topic(app: Flask, topic: MailTopic) -> None:
    """Offer a kind of optional mail on this app's account page.

    :raises ValueError: the key is taken by another topic, or longer than 32 characters.
    """
    if not topic.key or len(topic.key) > 32:
        raise ValueError(f"a topic's key is 1 to 32 characters, not {topic.key!r}")
    registered: dict[str, MailTopic] = app.extensions.setdefault(_EXTENSION, {})
    if registered.setdefault(topic.key, topic) != topic:
        raise ValueError(f"a mail topic {topic.key!r} is registered already")


def all_topics() -> list[MailTopic]:
    """Every kind of optional mail this app sends, in the order features registered them."""
    return list(current_app.extensions.get(_EXTENSION, {}).values())


def find_topic(key: str) -> MailTopic | None:
    """The topic registered under ``key``, if any."""
    found: MailTopic | None = current_app.extensions.get(_EXTENSION, {}).get(key)
    return found


def topics_for(member: Member) -> list[MailTopic]:
    """The topics a member may choose: staff's only for staff."""
    return [topic for topic in all_topics() if member.is_staff or not topic.is_for_staff]


def _topic(key: str) -> MailTopic:
    found = find_topic(key)
    if found is None:
        raise KeyError(f"no mail topic {key!r} is registered")
    return found


def choices_of(member: Member) -> dict[str, bool]:
    """Whether the member wants each topic they may choose."""
    stored = {
        key: is_wanted
        for key, is_wanted in db.session.execute(
            sa.select(MailPreference.topic, MailPreference.is_wanted).where(
                MailPreference.member_id == member.id
            )
        )
    }
    return {
        topic.key: stored.get(topic.key, topic.is_wanted_by_default) for topic in topics_for(member)
    }


def wanting(key: str, member_ids: Iterable[int]) -> set[int]:
    """Which of these members want the topic ``key`` (one query for any number of them)."""
    topic = _topic(key)
    candidates = sorted(set(member_ids))
    chosen: dict[int, bool] = {}
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start : start + CHUNK]
        chosen.update(
            (member_id, is_wanted)
            for member_id, is_wanted in db.session.execute(
                sa.select(MailPreference.member_id, MailPreference.is_wanted).where(
                    MailPreference.topic == key, MailPreference.member_id.in_(chunk)
                )
            )
        )
    return {
        member_id for member_id in candidates if chosen.get(member_id, topic.is_wanted_by_default)
    }


def wants(member: Member, key: str) -> bool:
    """Whether the member wants optional mail of the topic ``key``."""
    return member.id in wanting(key, [member.id])


def _choose(member_id: int, key: str, is_wanted: bool) -> None:
    values = {"member_id": member_id, "topic": key, "is_wanted": is_wanted, "updated_at": utcnow()}
    if not insert_ignoring_conflicts(MailPreference, values):
        db.session.execute(
            sa.update(MailPreference)
            .where(MailPreference.member_id == member_id, MailPreference.topic == key)
            .values(is_wanted=is_wanted, updated_at=values["updated_at"])
            .execution_options(synchronize_session=False)
        )


def set_choices(member: Member, wanted: Collection[str]) -> list[str]:
    """Keep the topics in ``wanted`` and stop the others the member may choose; the keys of
    the topics whose choice changed."""
    changed = []
    for key, was_wanted in choices_of(member).items():
        is_wanted = key in wanted
        if is_wanted != was_wanted:
            _choose(member.id, key, is_wanted)
            changed.append(key)
    return changed


def unsubscribe(member_id: int, key: str) -> None:
    """Stop the topic for the member (again: a second click changes nothing)."""
    _choose(member_id, key, False)


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="supporters-unsubscribe")


def unsubscribe_token(member_id: int, key: str) -> str:
    """The token of a link that stops ``key`` for the member, without signing in."""
    return str(_serializer().dumps([member_id, key]))


def read_unsubscribe_token(token: str) -> tuple[Member, MailTopic]:
    """The member and topic an unsubscribe link names.

    :raises InvalidToken: not signed here, a member since deleted, or a topic no longer offered.
    """
    try:
        member_id, key = _serializer().loads(token)
    except (BadSignature, ValueError, TypeError) as exc:
        raise InvalidToken(token) from exc
    member = db.session.get(Member, int(member_id))
    topic = find_topic(str(key))
    if member is None or topic is None:
        raise InvalidToken(token)
    return member, topic
