"""The public blueprint: embeds, the API, and the admin page that lists the allowed sites."""

from supporters.public.views import api, embeds, manage  # noqa: F401  (routes on ``bp``)
from supporters.public.views.blueprint import bp

__all__ = ["bp"]
