"""Settings that admins change on a page, kept in the database; each starts from the app's
configuration.

The environment (``SUPPORTERS_DUNNING_DAYS`` …) gives a setting its value until an admin saves
another (the email schedule page, in staff). The saved value is read where it is used, at each
use, so every web process and worker follows a change without a restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column

from supporters import audit
from supporters.db import utcnow
from supporters.extensions import Model, db

#: The settings an admin may change on a page (their configuration keys).
EDITABLE = frozenset({"DUNNING_DAYS", "RENEWAL_NOTICE_DAYS", "PATREON_REMINDER_DAYS"})


class SiteSetting(Model):
    """A setting an admin saved; with no row, the configuration's value holds."""

    __tablename__ = "site_settings"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(sa.JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def value(name: str) -> Any:
    """The setting's value now: the one an admin saved, or else the configuration's.

    :raises KeyError: the setting is not one admins may change.
    """
    if name not in EDITABLE:
        raise KeyError(name)
    saved = db.session.scalar(sa.select(SiteSetting.value).where(SiteSetting.name == name))
    return current_app.config[name] if saved is None else saved


def store(values: Mapping[str, Any], actor: audit.Actor) -> list[str]:
    """Save the settings that changed (already validated by the caller), each change audited.

    :returns: the names of the settings that changed.
    :raises KeyError: a setting is not one admins may change.
    """
    changed = []
    for name, new in values.items():
        old = value(name)
        if new == old:
            continue
        row = db.session.get(SiteSetting, name)
        if row is None:
            db.session.add(SiteSetting(name=name, value=new))
        else:
            row.value = new
        audit.record_action(
            "settings.changed",
            actor_id=actor.member_id,
            target_type="setting",
            target_id=name,
            details={"from": old, "to": new},
            ip_address=actor.ip_address,
        )
        changed.append(name)
    return changed
