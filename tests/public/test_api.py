"""The public API: answers that validate against its own OpenAPI description, CORS for the
allowed sites only, no personal data, results only where a poll shows them."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from flask import Flask

from supporters.audit import SYSTEM
from supporters.billing.grants import grant_membership
from supporters.db import utcnow
from supporters.extensions import db
from supporters.public.models import EmbedOrigin
from supporters.voting.models import ResultsVisibility
from tests.factories import make_member
from tests.site import build_site, furnish
from tests.voting.factories import make_patron, make_poll, make_tier

ENDPOINTS = {
    "/tiers": "Tiers",
    "/goals": "Goals",
    "/patrons": "Patrons",
    "/polls": "Polls",
    "/stories": "Stories",
}


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; their $refs point into the document.
    root = {**schema, "components": document["components"]}
    return jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_every_answer_validates_against_the_openapi_description(app: Flask) -> None:
    site = build_site(app)
    now = utcnow()
    furnish(site, now)
    make_poll(("Parks", "Roads"), results_visibility=ResultsVisibility.ALWAYS)
    make_poll(("Hidden",), results_visibility=ResultsVisibility.AFTER_VOTING)
    db.session.commit()
    client = app.test_client()

    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    jsonschema.Draft202012Validator.check_schema(document["components"]["schemas"]["Poll"])
    assert document["servers"] == [{"url": "http://localhost/api/v1"}]
    assert set(document["paths"]) == set(ENDPOINTS)

    answers = {}
    for path, name in ENDPOINTS.items():
        response = client.get("/api/v1" + path)
        assert response.status_code == 200 and response.mimetype == "application/json"
        declared = document["paths"][path]["get"]["responses"]["200"]
        schema = declared["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{name}"}
        _validator(document, schema).validate(response.get_json())
        answers[path] = response.get_json()

    polls = {poll["question"]: poll for poll in answers["/polls"]["polls"]}
    states = sorted(poll["state"] for poll in answers["/polls"]["polls"])
    assert states == ["closed", "closed", "open", "open", "open"]  # no draft
    shown = [p for p in answers["/polls"]["polls"] if p["results"] is not None]
    assert sorted(p["state"] for p in shown) == ["closed", "closed", "open"]
    assert [r["title"] for r in polls["What should we investigate next?"]["options"]]
    assert answers["/stories"]["stories"][0]["article_url"] == "https://news.example/empty-shops"
    # No member is named anywhere: not their addresses, nor their names.
    everything = json.dumps(answers)
    for person in site.people.values():
        assert person.email not in everything and person.display_name not in everything


def test_cors_only_for_the_allowed_sites(app: Flask) -> None:
    db.session.add(EmbedOrigin(origin="https://news.example"))
    make_patron()
    db.session.commit()
    client = app.test_client()

    allowed = client.get("/api/v1/patrons", headers={"Origin": "https://news.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://news.example"
    assert allowed.headers["Access-Control-Expose-Headers"] == "ETag"
    assert "Origin" in allowed.headers["Vary"]
    assert allowed.get_json() == {"patrons": 1}
    for origin in ("https://evil.example", "http://news.example", "null", None):
        headers = {"Origin": origin} if origin else {}
        refused = client.get("/api/v1/patrons", headers=headers)
        assert "Access-Control-Allow-Origin" not in refused.headers, origin
        assert "Origin" in refused.headers["Vary"]
        assert refused.get_json() == {"patrons": 1}  # servers may read it; browsers may not

    preflight = client.options(
        "/api/v1/goals",
        headers={
            "Origin": "https://news.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://news.example"
    assert "If-None-Match" in preflight.headers["Access-Control-Allow-Headers"]
    embed = client.get("/embed/goals", headers={"Origin": "https://news.example"})
    assert "Access-Control-Allow-Origin" not in embed.headers


def test_an_etag_answers_304_until_the_figures_change(app: Flask) -> None:
    client = app.test_client()
    first = client.get("/api/v1/patrons")
    etag = first.headers["ETag"]
    assert client.get("/api/v1/patrons", headers={"If-None-Match": etag}).status_code == 304
    weak = client.get("/api/v1/patrons", headers={"If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304  # as a compressing proxy sends it back
    make_patron()
    db.session.commit()
    changed = client.get("/api/v1/patrons", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json() == {"patrons": 1}
    assert changed.headers["ETag"] != etag

    # A membership staff give counts as the overview counts it.
    grant_membership(make_member(), make_tier(), ends_at=None, reason="Our columnist", actor=SYSTEM)
    db.session.commit()
    granted = client.get("/api/v1/patrons", headers={"If-None-Match": changed.headers["ETag"]})
    assert granted.status_code == 200 and granted.get_json() == {"patrons": 2}
