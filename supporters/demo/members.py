"""The demo's people: the admin and an editor, and readers with believable names and addresses.

Accounts go in through ``members.imports``, a chunk of readers at a time.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Sequence

from supporters.audit import Actor
from supporters.billing.models import add_months
from supporters.demo.story import Story
from supporters.members.imports import ImportedMember, import_members
from supporters.members.models import Role

ADMIN_EMAIL = "admin@example.org"
EDITOR_EMAIL = "editor@example.org"
EMAIL_DOMAINS = ("example.org", "example.com", "example.net")

# fmt: off
FIRST_NAMES = (
    "Anna", "Lukas", "Sofia", "Matteo", "Emma", "Noah", "Léa", "Jonas", "Marie", "Elias",
    "Chiara", "Luca", "Inès", "Hugo", "Zoë", "Finn", "Ingrid", "Mateo", "Julia", "Tomás",
    "Clara", "Pieter", "Aoife", "Oskar", "Sara", "Nikolai", "Eva", "Jan", "Amira", "Karim",
    "Lucía", "Ravi", "Elif", "Mehmet", "Hannah", "David", "Ana", "Sven", "Maja", "Olivier",
    "Giulia", "Kofi", "Fatima", "Daniel", "Laura", "Milan", "Nora", "Stefan", "Yasmin", "Paul",
)
LAST_NAMES = (
    "Schmidt", "Rossi", "Dubois", "Jansen", "García", "Novak", "Müller", "Bianchi", "Martin",
    "de Vries", "Fernández", "Kowalski", "Nielsen", "Bernard", "Murphy", "Lindqvist", "Costa",
    "Horvath", "Weber", "Moreau", "Esposito", "Peeters", "Silva", "Andersen", "Fischer",
    "O'Brien", "Kaya", "Popescu", "Virtanen", "Lefèvre", "Romano", "Meyer", "Svoboda",
    "Janssens", "Ferreira", "Hansen", "Wagner", "Russo", "Nowak", "Petit", "Yilmaz", "Sousa",
    "Berg", "Marino", "Bauer", "Leroy", "Kovač", "Gallo", "Olsen", "Ricci",
)
# fmt: on


def _ascii(text: str) -> str:
    """Lower-case letters only, accents dropped: the part of a name that goes into an address."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed.lower() if "a" <= c <= "z")


class Accounts:
    """Makes the demo's accounts."""

    def __init__(self, story: Story) -> None:
        self.story = story
        self.reader_number = 0

    def add_staff(self) -> tuple[Actor, Actor]:
        """The admin and the editor, who joined before the first reader; as audit actors."""
        joined = add_months(self.story.history_start, -1)
        admin_id, editor_id = import_members(
            [
                ImportedMember(ADMIN_EMAIL, "Demo Admin", joined, Role.ADMIN),
                ImportedMember(EDITOR_EMAIL, "Demo Editor", joined, Role.STAFF),
            ]
        )
        self.story.counts["staff"] = 2
        return Actor(admin_id), Actor(editor_id)

    def reader(self, subscribed_at: dt.datetime | None) -> ImportedMember:
        """A new reader who joined some time before subscribing, or any time if they never did."""
        rng = self.story.rng
        if subscribed_at is None:
            joined = self.story.between(self.story.history_start, self.story.now)
        elif rng.random() < 0.5:
            joined = subscribed_at - dt.timedelta(minutes=rng.randint(2, 30))
        else:
            joined = subscribed_at - dt.timedelta(
                days=rng.randint(1, 60), seconds=rng.randint(0, 86_399)
            )
        self.reader_number += 1
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        style = rng.random()
        if style < 0.6:
            stem = f"{_ascii(first)}.{_ascii(last)}"
        elif style < 0.85:
            stem = f"{_ascii(first)[0]}{_ascii(last)}"
        else:
            stem = _ascii(first)
        # The stem has no digits, so the reader's own number at its end makes the address unique.
        email = f"{stem}{self.reader_number}@{rng.choice(EMAIL_DOMAINS)}"
        display_name = "" if rng.random() < 0.08 else f"{first} {last}"
        return ImportedMember(email, display_name, joined)

    def add_readers(self, readers: Sequence[ImportedMember]) -> Sequence[int]:
        """Write a chunk of readers; their ids, in order."""
        member_ids = import_members(readers)
        self.story.counts["members"] += len(member_ids)
        return member_ids
