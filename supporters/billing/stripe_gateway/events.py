"""Webhook events: the signature verified on the raw body, and the event parsed less its secrets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import stripe

WEBHOOK_TOLERANCE_SECONDS = 5 * 60
#: Keys of Stripe objects that hold secrets a browser uses, never to be kept.
SECRET_KEYS = ("client_secret", "secret")


class SignatureError(ValueError):
    """A webhook whose Stripe-Signature does not verify with any configured secret."""


@dataclass(frozen=True)
class EventInfo:
    """A verified webhook event: its id, type and the object it is about."""

    id: str
    type: str
    api_version: str
    livemode: bool
    object_id: str | None
    object_type: str | None
    #: The event as Stripe sent it, less its client secrets (dropped as the body is parsed),
    #: so fit to keep in our database.
    payload: dict[str, Any]


def verify_event(payload: bytes, signature: str | None, secrets: Sequence[str]) -> EventInfo:
    """Verify a webhook's signature on the raw body with any configured secret, and parse it.

    :raises SignatureError: no secret configured, no signature, a bad one, too old, or a body
        that is not UTF-8.
    """
    if not secrets:
        raise SignatureError("no webhook signing secret is configured")
    if not signature:
        raise SignatureError("the Stripe-Signature header is missing")
    try:
        # Stripe sends JSON, which is UTF-8: any other body did not come from Stripe.
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureError("the body is not UTF-8 text") from exc
    last_error: Exception | None = None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                text, signature, secret, WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            last_error = exc
            continue
        return _event(payload)
    raise SignatureError(str(last_error))


def _event(payload: bytes) -> EventInfo:
    # Most events name no secret: parsing them needs no hook.
    hook = _without_secrets if b'secret"' in payload else None
    try:
        data = json.loads(payload, object_hook=hook)
        obj = data["data"]["object"]
        return EventInfo(
            id=str(data["id"]),
            type=str(data["type"]),
            api_version=str(data.get("api_version") or ""),
            livemode=bool(data.get("livemode")),
            object_id=obj.get("id"),
            object_type=obj.get("object"),
            payload=data,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SignatureError(f"the payload is not a Stripe event: {exc}") from exc


def _without_secrets(obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON object just parsed, less its client secrets (the parser calls it for each one)."""
    for key in SECRET_KEYS:
        obj.pop(key, None)
    return obj
