"""The OpenAPI 3.1 description of the public API (version 1), served at /api/v1/openapi.json.

Its schemas are JSON Schema 2020-12, exact about every field (``additionalProperties: false``),
so the tests can hold the real answers against them.
"""

from __future__ import annotations

from typing import Any

VERSION = "1.0.0"

_INT = {"type": "integer"}
_STR = {"type": "string"}
_URL = {"type": "string", "format": "uri"}
_CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code."}
_STAMP = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601."}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


SCHEMAS: dict[str, Any] = {
    "Tier": _object(
        {
            "slug": _STR,
            "name": _STR,
            "description": _STR,
            "currency": _CURRENCY,
            "monthly_amount": {**_INT, "description": "Minor units of the currency (cents)."},
            "yearly_amount": {**_INT, "description": "Minor units of the currency (cents)."},
        },
        "A level of support and its prices.",
    ),
    "Goal": _object(
        {
            "id": _INT,
            "title": _STR,
            "description": _STR,
            "measure": {"enum": ["patrons", "monthly_revenue"]},
            "target": {
                **_INT,
                "description": "Patrons, or minor units of `currency` per month.",
            },
            "currency": {
                "oneOf": [_CURRENCY, {"type": "null"}],
                "description": "For revenue goals; null for patron goals.",
            },
            "progress": {**_INT, "description": "How far the goal has come, in its measure."},
            "percent": {**_INT, "minimum": 0, "maximum": 100},
        },
        "A funding goal and how far it has come.",
    ),
    "PollOption": _object({"id": _INT, "title": _STR}),
    "PollResult": _object(
        {
            "option_id": _INT,
            "title": _STR,
            "ballots": _INT,
            "votes": {"type": "number", "description": "Weighted votes, after any cap."},
            "percent": {"type": "number", "description": "Share of all weighted votes."},
            "is_winner": {"type": "boolean"},
        }
    ),
    "Poll": _object(
        {
            "id": _INT,
            "question": _STR,
            "description": _STR,
            "state": {"enum": ["open", "closed"]},
            "opens_at": _STAMP,
            "closes_at": _nullable(_STAMP),
            "max_choices": _INT,
            "ballots": _INT,
            "eligible": {
                "oneOf": [_INT, {"type": "null"}],
                "description": "Patrons who may vote (could, once closed).",
            },
            "turnout_percent": _nullable(_INT),
            "url": {**_URL, "description": "The poll's page, where patrons vote."},
            "options": _list_of("PollOption"),
            "results": {
                "oneOf": [_list_of("PollResult"), {"type": "null"}],
                "description": "Null while the poll keeps its results hidden.",
            },
        },
        "A poll with its options, turnout and (where the poll shows them) results.",
    ),
    "Story": _object(
        {
            "id": _INT,
            "title": _STR,
            "pitch": _STR,
            "article_url": _nullable(_URL),
            "published_on": _nullable({"type": "string", "format": "date"}),
        },
        "A topic patrons asked for, and the article it became.",
    ),
    "Tiers": _object({"tiers": _list_of("Tier"), "support_url": _URL}),
    "Goals": _object({"goals": _list_of("Goal"), "support_url": _URL}),
    "Patrons": _object({"patrons": _INT}),
    "Polls": _object({"polls": _list_of("Poll")}),
    "Stories": _object({"stories": _list_of("Story")}),
}

#: Path (under the server's URL) -> operation id, summary, schema of the answer.
PATHS = {
    "/tiers": ("listTiers", "Tiers with their prices", "Tiers"),
    "/goals": ("listGoals", "Funding goals with their progress", "Goals"),
    "/patrons": ("countPatrons", "The number of patrons", "Patrons"),
    "/polls": ("listPolls", "Open and closed polls", "Polls"),
    "/stories": ("listStories", "You asked, we reported: published stories", "Stories"),
}

_CACHING = (
    "Every answer carries `Cache-Control` (a short max-age, then stale-while-revalidate) and a "
    "strong `ETag` that changes when the figures do; send it back in `If-None-Match` to get "
    "`304 Not Modified`. Answers are the same for every visitor, set no cookie and hold no "
    "personal data. Browsers may read them from the sites the newsroom allows (CORS)."
)


def _operation(operation_id: str, summary: str, schema: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "parameters": [
                {"name": "If-None-Match", "in": "header", "required": False, "schema": _STR}
            ],
            "responses": {
                "200": {
                    "description": summary,
                    "headers": {
                        "ETag": {"schema": _STR},
                        "Cache-Control": {"schema": _STR},
                    },
                    "content": {"application/json": {"schema": _ref(schema)}},
                },
                "304": {"description": "Not modified: the `ETag` sent is still current."},
            },
        }
    }


def document(server_url: str) -> dict[str, Any]:
    """The description, with ``server_url`` (this site's ``/api/v1``) as its server."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Public API",
            "version": VERSION,
            "description": "Read-only figures of the newsroom's support and polls. " + _CACHING,
        },
        "servers": [{"url": server_url}],
        "paths": {path: _operation(*operation) for path, operation in PATHS.items()},
        "components": {"schemas": SCHEMAS},
    }
