"""Polite fetching on httpx: conditional GET, an overall deadline, a size limit counted after
decompression, a redirect limit, a per-host concurrency limit, and Retry-After read on 429/503.

httpx's own timeouts are per operation (a server trickling bytes never trips them) and its pool
limits are not per host; both are done here.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass

import httpx

from dedup.feeds.config import Limits

USER_AGENT = "arabic-news-dedup/0.1 (+https://github.com/; feed poller)"
MAX_REDIRECTS = 5


class FetchError(Exception):
    """A fetch that failed: what happened, and how long the server asked us to wait (if it did)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int  # 200 (or another 2xx) with a body, or 304 without
    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str
    url: str  # after redirects


class Fetcher:
    """One shared HTTP client; at most ``per_host`` fetches in flight to one host."""

    def __init__(self, *, user_agent: str = USER_AGENT, connect_timeout: float = 10.0) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(connect_timeout),
        )
        self._hosts: dict[str, asyncio.Semaphore] = {}

    async def fetch(self, url: str, limits: Limits, *, etag: str | None = None,
                    last_modified: str | None = None) -> Fetched:
        host = httpx.URL(url).host
        gate = self._hosts.setdefault(host, asyncio.Semaphore(limits.per_host))
        async with gate:
            try:
                return await asyncio.wait_for(self._get(url, limits, etag, last_modified), timeout=limits.timeout)
            except TimeoutError:
                raise FetchError(f"no complete response within {limits.timeout:g} s") from None
            except httpx.TooManyRedirects:
                raise FetchError(f"more than {MAX_REDIRECTS} redirects (a redirect loop?)") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"{type(exc).__name__}: {exc or 'connection failed'}") from None

    async def _get(self, url: str, limits: Limits, etag: str | None, last_modified: str | None) -> Fetched:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        async with self._client.stream("GET", url, headers=headers) as response:
            code = response.status_code
            if code == 304:
                return Fetched(304, b"", etag, last_modified, "", str(response.url))
            if code in (429, 503):
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                raise FetchError(f"HTTP {code}" + (f", Retry-After {wait:g} s" if wait else ""), status=code,
                                 retry_after=wait)
            if code >= 400:
                raise FetchError(f"HTTP {code} {response.reason_phrase}".rstrip(), status=code)
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise FetchError(f"response of {int(declared)} bytes is over the limit of {limits.max_bytes}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():  # decompressed: what a gzip bomb inflates to counts
                size += len(chunk)
                if size > limits.max_bytes:
                    raise FetchError(f"response over the limit of {limits.max_bytes} bytes (after decompression)")
                chunks.append(chunk)
            return Fetched(code, b"".join(chunks), response.headers.get("ETag"), response.headers.get("Last-Modified"),
                           response.headers.get("Content-Type", ""), str(response.url))

    async def aclose(self) -> None:
        await self._client.aclose()


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date).

    >>> retry_after_seconds("120"), retry_after_seconds(None), retry_after_seconds("soon")
    (120.0, None, None)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
