"""The HTTP seam of the InfluxDB store: requests as plain data, one real transport (urllib3), fakes in the tests.

A transport either returns the server's answer, whatever its status, or raises :class:`Unavailable` when there
was no answer (connection refused or reset, timeout): the store spools on the latter and judges the former.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, Self

import urllib3

from connectors.stores.base import StoreError

__all__ = ["HttpRequest", "HttpResponse", "Transport", "Unavailable", "Urllib3Transport"]


class HttpRequest(NamedTuple):
    """One request: method, absolute URL with its query string, headers and body."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


class HttpResponse(NamedTuple):
    """The server's answer: status and body."""

    status: int
    body: bytes


class Unavailable(StoreError):
    """The server is not taking requests now (no answer, or an answer that means "later"): worth retrying."""


class Transport(Protocol):
    """Sends requests; raises :class:`Unavailable` when no answer came back."""

    def send(self, request: HttpRequest) -> HttpResponse:
        """The server's answer to ``request``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class _StaleConnectionRetry(urllib3.Retry):
    """One more try for a request that failed on a connection the server closed, never for one it did not answer in
    time: a server that hangs (overloaded, stopped) would otherwise hold the caller for two timeouts, and the pipeline's
    live state waits on that call."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        """The next retry state, or MaxRetryError at once for a read timeout."""
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            raise urllib3.exceptions.MaxRetryError(_pool, url or "", error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


class Urllib3Transport:
    """A keep-alive connection pool. ``timeout_s`` bounds connecting and each read.

    A request that fails on a pooled connection the server has since closed (after a restart) is sent once more
    on a fresh one; that is safe here because every request the store makes is idempotent (a rewrite replaces
    the same points). Nothing else is retried, a request the server did not answer within ``timeout_s`` included:
    the store's spool does that.
    """

    def __init__(self, *, timeout_s: float = 10.0, verify_tls: bool = True) -> None:
        retry = _StaleConnectionRetry(total=1, connect=0, read=1, redirect=0, status=0, other=0, allowed_methods=None)
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=4,
            retries=retry,
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE",
        )
        self._closed = False

    def send(self, request: HttpRequest) -> HttpResponse:
        """Send and read the whole answer; Unavailable (naming method and URL) if there was none, or once closed."""
        if self._closed:
            # A late caller (a health probe racing the shutdown) would open a connection that nobody closes.
            raise Unavailable(f"{request.method} {request.url.split('?', 1)[0]}: the connection pool is closed")
        try:
            resp = self._pool.request(
                request.method, request.url, body=request.body, headers=request.headers, redirect=False, preload_content=True
            )
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(f"{request.method} {request.url.split('?', 1)[0]}: no answer: {exc}") from exc
        return HttpResponse(resp.status, resp.data)

    def close(self) -> None:
        """Close pooled connections; later requests are refused as Unavailable."""
        self._closed = True
        self._pool.clear()
