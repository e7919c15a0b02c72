"""Importing a checked Patreon export: members by address, their Patreon history, the tier
mapping, and a grant for each paid-up patron until their paid period ends.

One unit of work: the caller commits (or, for a dry run, rolls back). Importing the same file
again changes nothing; a newer export updates what changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters import audit
from supporters.billing import grants
from supporters.billing.grant_models import GrantSource
from supporters.billing.models import Tier
from supporters.db import insert_many, utcnow
from supporters.extensions import db
from supporters.members.imports import ImportedMember, import_members
from supporters.members.models import Member
from supporters.patreon.export import Export, PatreonRow
from supporters.patreon.models import ImportedPatron, TierMapping

T = TypeVar("T")
# Rows per IN (...) list: well under every database's limit on bound parameters.
CHUNK = 500


class PatreonImportError(Exception):
    """The export cannot be imported as it is; ``message`` says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass
class ImportCounts:
    """What an import changed (or, in a dry run, would change)."""

    rows: int = 0  # people in the file (duplicates merged)
    duplicates: int = 0  # rows that repeated a person already in the file
    members_created: int = 0
    members_found: int = 0
    patrons_created: int = 0
    patrons_updated: int = 0
    patrons_unchanged: int = 0
    grants_created: int = 0
    grants_updated: int = 0
    grants_ended: int = 0
    mappings_confirmed: int = 0

    @property
    def changes(self) -> int:
        return (
            self.members_created
            + self.patrons_created
            + self.patrons_updated
            + self.grants_created
            + self.grants_updated
            + self.grants_ended
            + self.mappings_confirmed
        )

    def lines(self) -> list[tuple[str, int]]:
        """Each figure with its label, for the command's output and the preview page."""
        return [
            (_("People in the file"), self.rows),
            (_("Repeated rows merged"), self.duplicates),
            (_("Members created"), self.members_created),
            (_("Members already here"), self.members_found),
            (_("Patreon records created"), self.patrons_created),
            (_("Patreon records updated"), self.patrons_updated),
            (_("Patreon records unchanged"), self.patrons_unchanged),
            (_("Grants created (paid up on Patreon)"), self.grants_created),
            (_("Grants updated"), self.grants_updated),
            (_("Grants ended"), self.grants_ended),
            (_("Tier mappings confirmed"), self.mappings_confirmed),
        ]


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def local_tiers() -> list[Tier]:
    """The tiers a Patreon tier may map to, cheapest first."""
    return list(
        db.session.scalars(
            sa.select(Tier).where(Tier.is_active).order_by(Tier.monthly_amount, Tier.position)
        )
    )


def suggest_tier(monthly_pledge: int, tiers: Sequence[Tier]) -> Tier | None:
    """The dearest tier a monthly pledge pays for (the cheapest tier if it pays for none).

    Compared at face value: a suggestion for the admin to confirm, not a conversion.
    """
    if not tiers:
        return None
    within = [t for t in tiers if t.monthly_amount <= monthly_pledge]
    return max(within, key=lambda t: t.monthly_amount) if within else tiers[0]


def proposed_mapping(export: Export) -> dict[str, int | None]:
    """Patreon tier name -> local tier id: the confirmed mapping, else a suggestion by amount."""
    names = sorted({row.tier for row in export.rows})
    confirmed = {
        m.patreon_tier: m.tier_id
        for m in db.session.scalars(
            sa.select(TierMapping).where(TierMapping.patreon_tier.in_(names))
        )
    }
    tiers = local_tiers()
    pledges: dict[str, list[int]] = defaultdict(list)
    for row in export.rows:
        pledges[row.tier].append(row.monthly_pledge)
    mapping: dict[str, int | None] = {}
    for name in names:
        if name in confirmed:
            mapping[name] = confirmed[name]
        else:
            suggested = suggest_tier(int(statistics.median_low(pledges[name])), tiers)
            mapping[name] = suggested.id if suggested else None
    return mapping


def tier_names(export: Export) -> list[tuple[str, int]]:
    """The export's Patreon tiers and how many people pledge to each, largest first."""
    counts = Counter(row.tier for row in export.rows)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _confirm_mapping(mapping: Mapping[str, int | None], actor: audit.Actor) -> int:
    existing = {
        m.patreon_tier: m
        for m in db.session.scalars(
            sa.select(TierMapping).where(TierMapping.patreon_tier.in_(list(mapping)))
        )
    }
    changed = 0
    for name, tier_id in mapping.items():
        if tier_id is None:
            continue
        row = existing.get(name)
        if row is None:
            db.session.add(
                TierMapping(patreon_tier=name, tier_id=tier_id, confirmed_by_id=actor.member_id)
            )
            changed += 1
        elif row.tier_id != tier_id:
            row.tier_id = tier_id
            row.confirmed_by_id = actor.member_id
            row.confirmed_at = utcnow()
            changed += 1
    return changed


def _patron_values(row: PatreonRow, tier_id: int | None) -> dict[str, Any]:
    return {
        "patreon_user_id": row.patreon_user_id,
        "status": row.status,
        "pledge_amount": row.pledge_amount,
        "currency": row.currency,
        "charge_frequency": row.charge_frequency,
        "patreon_tier": row.tier,
        "patronage_since_at": row.patronage_since_at,
        "last_charge_at": row.last_charge_at,
        "last_charge_status": row.last_charge_status,
        "next_charge_at": row.next_charge_at,
        "lifetime_amount": row.lifetime_amount,
        "access_expires_at": row.access_expires_at,
        "tier_id": tier_id,
    }


def import_export(
    export: Export,
    mapping: Mapping[str, int | None],
    actor: audit.Actor,
    now: dt.datetime | None = None,
) -> ImportCounts:
    """Apply a checked export: members, their Patreon records, grants and the tier mapping.

    Flushes; the caller commits, or rolls back for a dry run.

    :raises PatreonImportError: paid-up patrons whose Patreon tier maps to no tier here.
    """
    now = now or utcnow()
    counts = ImportCounts(rows=len(export.rows), duplicates=export.duplicates)
    unmapped = sorted(
        {row.tier for row in export.rows if row.is_paid_up and mapping.get(row.tier) is None}
    )
    if unmapped:
        names = ", ".join(repr(n) if n else _("(no tier)") for n in unmapped)
        raise PatreonImportError(
            _("Map these Patreon tiers to a tier here first: %(names)s.", names=names)
        )
    counts.mappings_confirmed = _confirm_mapping(mapping, actor)

    emails = [row.email for row in export.rows]
    member_ids: dict[str, int] = {}
    for chunk in _chunks(emails):
        rows = db.session.execute(sa.select(Member.email, Member.id).where(Member.email.in_(chunk)))
        member_ids.update((email, member_id) for email, member_id in rows)
    counts.members_found = len(member_ids)
    new_rows = [row for row in export.rows if row.email not in member_ids]
    new_ids = import_members(
        [ImportedMember(row.email, row.name, row.patronage_since_at or now) for row in new_rows]
    )
    member_ids.update(zip((row.email for row in new_rows), new_ids, strict=True))
    counts.members_created = len(new_rows)

    patrons: dict[int, ImportedPatron] = {}
    ids = list(member_ids.values())
    for some_ids in _chunks(ids):
        patrons.update(
            (p.member_id, p)
            for p in db.session.scalars(
                sa.select(ImportedPatron)
                .where(ImportedPatron.member_id.in_(some_ids))
                .options(sa.orm.selectinload(ImportedPatron.grant))
            )
        )

    # New records (every one, on a first import) go in bulk; known ones are compared and updated.
    new_patrons: list[dict[str, Any]] = []
    new_grants: list[grants.CarriedGrant] = []
    grant_of_new: list[int | None] = []  # per new record, its grant's index in new_grants
    for row in export.rows:
        member_id = member_ids[row.email]
        tier_id = mapping.get(row.tier)
        values = _patron_values(row, tier_id)
        patron = patrons.get(member_id)
        if patron is None:
            carried = _carried(row, member_id, tier_id, now)
            grant_of_new.append(len(new_grants) if carried is not None else None)
            if carried is not None:
                new_grants.append(carried)
            new_patrons.append(
                {
                    "member_id": member_id,
                    **values,
                    "invited_at": None,
                    "opened_at": None,
                    "imported_at": now,
                    "updated_at": now,
                }
            )
            continue
        changed = {k: v for k, v in values.items() if getattr(patron, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(patron, key, value)
            patron.updated_at = now
            counts.patrons_updated += 1
        else:
            counts.patrons_unchanged += 1
        _carry_entitlement(patron, _carried(row, member_id, tier_id, now), now, counts)
    grant_ids = grants.carry_grants(new_grants)
    for values, index in zip(new_patrons, grant_of_new, strict=True):
        values["grant_id"] = grant_ids[index] if index is not None else None
    insert_many(ImportedPatron, new_patrons)
    counts.patrons_created = len(new_patrons)
    counts.grants_created += len(new_grants)
    db.session.flush()
    audit.record_action(
        "patreon.imported",
        actor_id=actor.member_id,
        target_type="patreon_import",
        details={k: v for k, v in dataclasses.asdict(counts).items() if v},
        ip_address=actor.ip_address,
    )
    return counts


def _carried(
    row: PatreonRow, member_id: int, tier_id: int | None, now: dt.datetime
) -> grants.CarriedGrant | None:
    """The grant a row gives: a paid-up patron's, until their paid period ends (None: none)."""
    paid_through = row.paid_through
    if not row.is_paid_up or tier_id is None or paid_through is None or paid_through <= now:
        return None
    return grants.CarriedGrant(
        member_id=member_id,
        tier_id=tier_id,
        starts_at=row.last_charge_at or now,
        ends_at=paid_through,
        source=GrantSource.PATREON,
        reason=_("Paid on Patreon"),
    )


def _carry_entitlement(
    patron: ImportedPatron,
    carried: grants.CarriedGrant | None,
    now: dt.datetime,
    counts: ImportCounts,
) -> None:
    """Make, update or end a known patron's grant as the export now says."""
    grant = patron.grant
    if carried is not None:
        before = (grant.tier_id, grant.ends_at) if grant is not None else None
        grant = grants.carry_grant(
            grant,
            member_id=carried.member_id,
            tier_id=carried.tier_id,
            starts_at=carried.starts_at,
            ends_at=carried.ends_at,
            source=carried.source,
            reason=carried.reason,
        )
        if before is None:
            patron.grant = grant
            counts.grants_created += 1
        elif before != (grant.tier_id, grant.ends_at):
            counts.grants_updated += 1
    elif grant is not None and grants.end_grant(grant, None, now):
        counts.grants_ended += 1
