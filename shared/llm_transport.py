"""An httpx transport on urllib3's connection pool, for the OpenAI SDK's clients.

The SDK talks through httpx, whose connection pool (httpcore) spends CPU in proportion to the
requests in flight times the connections on every change of state. With hundreds of LLM calls
waiting at once in one worker — the point of the gevent pool — that cost dominated: measured
on this project's 2-core machine under gevent with 100 concurrent calls, 6.7 ms of CPU per call
through the default transport against 1.6 ms through this one (``docs/benchmarks.md``). The
SDK keeps everything else — auth, base URL, timeouts, error classes, streaming.

The transport maps urllib3's failures to httpx's exception classes, so the SDK raises its usual
``APITimeoutError`` and ``APIConnectionError`` and the router's retries keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

#: Connections kept per host (calls beyond it open short-lived extra connections).
POOL_MAXSIZE = 256


class _Body(httpx.SyncByteStream):
    """A urllib3 response body streamed to httpx (SSE streams included)."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        """Yield the body as it arrives."""
        try:
            yield from self._response.stream(64 * 1024, decode_content=True)
        except ReadTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc)) from exc
        except (ProtocolError, HTTPError) as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc

    def close(self) -> None:
        """Give the connection back to the pool."""
        self._response.release_conn()


def _timeout(request: httpx.Request) -> urllib3.Timeout:
    """urllib3's timeout for the httpx request's ``timeout`` extension."""
    timeout: dict[str, Any] = request.extensions.get("timeout") or {}
    return urllib3.Timeout(connect=timeout.get("connect"), read=timeout.get("read"))


class Urllib3Transport(httpx.BaseTransport):
    """httpx's synchronous transport interface over a ``urllib3.PoolManager``.

    Args:
        maxsize: Connections kept per host.
    """

    def __init__(self, maxsize: int = POOL_MAXSIZE) -> None:
        self._pool = urllib3.PoolManager(maxsize=maxsize, retries=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request; the body of the answer streams until httpx closes it.

        Args:
            request: The httpx request.

        Returns:
            The response.

        Raises:
            httpx.ConnectTimeout: When connecting took too long.
            httpx.ReadTimeout: When the answer took too long.
            httpx.ConnectError: When the server cannot be reached.
            httpx.RemoteProtocolError: When the connection broke mid-answer.
        """
        try:
            response = self._pool.urlopen(
                request.method,
                str(request.url),
                body=request.read(),
                headers=dict(request.headers),
                redirect=False,
                preload_content=False,
                timeout=_timeout(request),
            )
        except NewConnectionError as exc:  # first: urllib3 derives it from ConnectTimeoutError
            raise httpx.ConnectError(str(exc), request=request) from exc
        except ConnectTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except ReadTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except (ProtocolError, HTTPError) as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        return httpx.Response(
            response.status,
            headers=list(response.headers.items()),
            stream=_Body(response),
            extensions={"http_version": b"HTTP/1.1"},
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()
