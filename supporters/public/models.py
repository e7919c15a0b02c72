"""The sites allowed to frame the embeds and to read the API from a browser."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from supporters.db import utcnow
from supporters.extensions import Model


class EmbedOrigin(Model):
    """An origin (``https://news.example``: scheme, host, optional port) the newsroom trusts."""

    __tablename__ = "embed_origins"
    __table_args__ = (
        sa.CheckConstraint(
            "origin LIKE 'https://%' OR origin LIKE 'http://%'", name="origin_scheme"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    origin: Mapped[str] = mapped_column(sa.String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
