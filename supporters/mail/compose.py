"""Render a message's subject, plain text and HTML from its templates, in its reader's language.

A message is two templates, ``<name>.txt`` and ``<name>.html``, under ``templates/emails/``;
they extend ``emails/_layout.txt`` and ``emails/_layout.html``, which carry the site's name
and the footer (with the unsubscribe link of optional mail). The HTML is styled inline, with
no remote image, for the mail programs that drop style sheets; the text part stands alone.

Templates are rendered with the app's Jinja environment but without Flask's request context
processors: a message is often rendered by a worker, where there is no request and no
signed-in member. Links in them are absolute, passed in by the caller (``web.external_url``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from flask import current_app
from flask_babel import force_locale


@dataclasses.dataclass(frozen=True)
class Letter:
    subject: str
    text: str
    html: str


def render(
    template: str,
    *,
    subject: Any,
    locale: str,
    context: Mapping[str, Any],
    unsubscribe_url: str | None = None,
    preferences_url: str | None = None,
) -> Letter:
    """Render ``template`` (``emails/billing/receipt``, say) in ``locale``.

    ``subject`` is translated in that locale too: pass a lazy string (``lazy_gettext``).
    """
    environment = current_app.jinja_env
    with force_locale(locale):
        subject_text = " ".join(str(subject).split())  # one line, whatever a title held
        values = {
            **context,
            "subject": subject_text,
            "locale": locale,
            "site": current_app.config["SITE_NAME"],
            "unsubscribe_url": unsubscribe_url,
            "preferences_url": preferences_url,
        }
        text = environment.get_template(f"{template}.txt").render(values)
        html = environment.get_template(f"{template}.html").render(values)
    return Letter(subject_text, _tidy(text), html)


def _tidy(text: str) -> str:
    """One blank line at most between paragraphs (templates leave more), none at either end."""
    return re.sub(r"\n{3,}", "\n\n", text.strip("\n")) + "\n"
