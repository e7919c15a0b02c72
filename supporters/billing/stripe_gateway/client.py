"""The app's Stripe client: the pinned API version, and its transport.

The one place a ``StripeClient`` is built, from the app's settings, and the connection pool
its requests go out on. The calls in this package (and only they) use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote, urlsplit

import requests
import stripe
import urllib3
from flask import current_app

#: The Stripe API version every request and every webhook endpoint must speak.
API_VERSION = "2026-10-28.endive"


# Errors callers handle, re-exported so that no other module imports the SDK.
StripeError = stripe.StripeError
CardError = stripe.CardError
InvalidRequestError = stripe.InvalidRequestError


class NotConfigured(RuntimeError):
    """No Stripe secret key is configured (the demo checkout is used instead)."""


def is_configured() -> bool:
    """Whether a Stripe secret key is set (else the demo checkout stands in)."""
    return bool(current_app.config["STRIPE_SECRET_KEY"])


def client() -> stripe.StripeClient:
    """The app's Stripe client, built once from its settings with the API version pinned.

    :raises NotConfigured: no secret key is set.
    """
    key = current_app.config["STRIPE_SECRET_KEY"]
    if not key:
        raise NotConfigured("SUPPORTERS_STRIPE_SECRET_KEY is not set")
    cached = current_app.extensions.get("stripe_client")
    if cached is not None:
        return cast(stripe.StripeClient, cached)
    api_base = current_app.config["STRIPE_API_BASE"]
    built = stripe.StripeClient(
        key,
        stripe_version=API_VERSION,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=2,
        http_client=_http_client(api_base or stripe.DEFAULT_API_BASE),
    )
    current_app.extensions["stripe_client"] = built
    return built


def _http_client(api_base: str) -> stripe.HTTPClient:
    """The SDK's transport: one keep-alive pool, with the proxy settings read once, here.

    ``NO_PROXY`` naming Stripe's host turns the proxy off, as ``requests`` would.
    """
    proxies = requests.utils.get_environ_proxies(api_base)
    proxy = proxies.get(urlsplit(api_base).scheme) or proxies.get("all")
    return PooledHTTPClient(proxy=proxy)


class PooledHTTPClient(stripe.HTTPClient):
    """The SDK's requests sent on one urllib3 pool manager, kept alive between requests.

    ``requests`` (the SDK's default) is urllib3 underneath, with sessions, cookies, hooks and
    environment lookups on top that a client of one API does not use: they were half the
    Python work of a webhook's fetch. Retries stay the SDK's (``max_network_retries``): this
    class only says which failures are worth one, as the SDK's own clients do.
    """

    name = "urllib3"

    def __init__(self, *, timeout: float = 80, proxy: str | None = None) -> None:
        super().__init__(proxy=proxy)
        options: dict[str, Any] = {
            "timeout": urllib3.Timeout(connect=timeout, read=timeout),
            "retries": False,
            "maxsize": 10,  # connections kept per host, for threaded servers (as requests does)
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": stripe.ca_bundle_path,
        }
        self._pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        )

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        """The body (bytes, which the SDK decodes), the status and the headers."""
        response = self._send(method, url, headers, post_data, preload_content=True)
        return response.data, response.status, response.headers

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        response = self._send(method, url, headers, post_data, preload_content=False)
        return response, response.status, response.headers

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: Any,
        *,
        preload_content: bool,
    ) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.request(
                method.upper(),
                url,
                body=body,
                headers=dict(headers or {}),
                redirect=False,
                preload_content=preload_content,
            )
        except urllib3.exceptions.SSLError as exc:
            # Someone is intercepting TLS: retrying would not help.
            raise _connection_error(
                "Could not verify Stripe's TLS certificate", exc, retry=False
            ) from exc
        except (
            urllib3.exceptions.TimeoutError,
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.ProxyError,
        ) as exc:
            raise _connection_error("Could not reach Stripe", exc, retry=True) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise _connection_error("Unexpected error talking to Stripe", exc, retry=False) from exc

    def close(self) -> None:
        self._pool.clear()


def _connection_error(message: str, cause: Exception, *, retry: bool) -> stripe.APIConnectionError:
    """The SDK's network error, saying whether its retry loop should try again."""
    return stripe.APIConnectionError(  # type: ignore[no-untyped-call]
        f"{message} ({type(cause).__name__}: {cause}).", should_retry=retry
    )


def fetch(path: str, *, expand: Sequence[str] = ()) -> dict[str, Any]:
    """GET one object as plain JSON.

    The conversions below read plain dicts, so building the SDK's objects first (costly for
    expanded responses, and turned back into dicts at once) is skipped. The request is still
    the SDK's: the pinned version, retries, and a StripeError for an error response.
    """
    params: dict[str, Any] = {"expand": list(expand)} if expand else {}
    response = client().raw_request("get", path, **params)
    return cast(dict[str, Any], response.data)


def path(*parts: str) -> str:
    """A Stripe API path from its parts, each quoted."""
    return "/v1/" + "/".join(quote(part, safe="") for part in parts)


def options(idempotency_key: str | None) -> Any:
    """Request options carrying an idempotency key, if any."""
    return {"idempotency_key": idempotency_key} if idempotency_key else None
