"""Members, their sign-in requests and their browser sessions."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import Mapped, mapped_column, relationship

from supporters.db import enum_column, utcnow
from supporters.extensions import Model

EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path
DISPLAY_NAME_MAX_LENGTH = 80


class Role(enum.StrEnum):
    """What a person may do: members support and vote, staff read reports, admins manage."""

    MEMBER = "member"
    STAFF = "staff"
    ADMIN = "admin"

    @property
    def is_staff(self) -> bool:
        return self in (Role.STAFF, Role.ADMIN)

    @property
    def label(self) -> str:
        """The role as people read it."""
        labels: dict[Role, str] = {
            Role.MEMBER: _("Member"),
            Role.STAFF: _("Staff"),
            Role.ADMIN: _("Admin"),
        }
        return labels[self]


class Member(Model):
    """A reader with an account. The email is stored lower-cased, so uniqueness ignores case."""

    __tablename__ = "members"
    __table_args__ = (
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
        sa.CheckConstraint("session_version >= 1", name="session_version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(EMAIL_MAX_LENGTH), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(DISPLAY_NAME_MAX_LENGTH), default="")
    role: Mapped[Role] = mapped_column(enum_column(Role, "member_role"), default=Role.MEMBER)
    email_verified_at: Mapped[dt.datetime | None]
    # Bumped by "sign out everywhere" and by an email change: every older session stops working.
    session_version: Mapped[int] = mapped_column(default=1)
    locale: Mapped[str | None] = mapped_column(sa.String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    sessions: Mapped[list[MemberSession]] = relationship(
        back_populates="member", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_staff(self) -> bool:
        return self.role.is_staff

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def name(self) -> str:
        """What to call the member in pages and emails."""
        return self.display_name or self.email.split("@", 1)[0]

    def __repr__(self) -> str:
        return f"<Member {self.id} {self.role}>"


class MemberSession(Model):
    """One signed-in browser. The session cookie names this row, never the member directly.

    Signing out revokes the row; "sign out everywhere" bumps the member's session version, which
    every row recorded when it was made, so all copies of every old cookie stop working at once.
    """

    __tablename__ = "member_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    session_version: Mapped[int]
    user_agent: Mapped[str] = mapped_column(sa.String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]

    member: Mapped[Member] = relationship(back_populates="sessions")


class SignInPurpose(enum.StrEnum):
    """Why a sign-in message was sent."""

    SIGN_IN = "sign_in"  # also signs up: the account is made when the address is proven
    CHANGE_EMAIL = "change_email"


class SignInRequest(Model):
    """A sign-in link and code sent by email. Only hashes are stored; each is single-use."""

    __tablename__ = "sign_in_requests"
    __table_args__ = (
        sa.CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
        sa.CheckConstraint(
            "purpose <> 'change_email' OR member_id IS NOT NULL", name="change_email_has_member"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[SignInPurpose] = mapped_column(
        enum_column(SignInPurpose, "sign_in_purpose"), default=SignInPurpose.SIGN_IN
    )
    email: Mapped[str] = mapped_column(sa.String(EMAIL_MAX_LENGTH), index=True)
    # Set for an existing account (sign-in) and for email changes; NULL means "sign up".
    member_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    display_name: Mapped[str] = mapped_column(sa.String(DISPLAY_NAME_MAX_LENGTH), default="")
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    next_url: Mapped[str] = mapped_column(sa.String(500), default="")
    ip_address: Mapped[str] = mapped_column(sa.String(45), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]

    member: Mapped[Member | None] = relationship()


class MailPreference(Model):
    """A member's choice about one kind of optional mail (a topic: "polls", "results", ...).

    No row: the topic's default (see ``members.preferences``). Transactional mail (sign-in,
    receipts, payment notices) is not optional and has no preference.
    """

    __tablename__ = "mail_preferences"

    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    is_wanted: Mapped[bool]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
