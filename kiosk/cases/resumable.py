"""A GCS resumable upload that survives a cut link and a killed process.

https://cloud.google.com/storage/docs/performing-resumable-uploads: the kiosk opens a session
(one small request; its URI is kept in the case store before any picture byte is sent), then
sends everything from the current offset in one request. When the link drops, Storage keeps
what it received; the next attempt, in this process or after a restart, asks the session how
far it got (`Content-Range: bytes */TOTAL`, answered 308 with `Range: bytes=0-LAST`) and sends
only the rest. A session the server no longer knows (404/410: it expires after a week) starts
again from zero.

One request for the whole remainder, not 256 KiB chunks: at 12 KB/s a chunk takes 20 s, far
longer than a rural link stays up, while the server keeps the bytes of a cut request anyway.
The session URI lets anyone holding it write this one object: it is kept in the store (0600)
and never logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Bytes handed to the connection at a time: small enough that progress (and the link monitor)
# sees a slow link move, large enough not to cost CPU on a fast one.
SEND_BLOCK = 16 * 1024

_RANGE = re.compile(r"bytes=0-(\d+)")


class IncompleteUploadError(Exception):
    """The server answered the whole remainder with less than all of it stored."""


class SessionGoneError(Exception):
    """The server no longer knows this upload session: start a new one from byte 0."""


@dataclass(frozen=True)
class Progress:
    """Where a session stands: `stored` bytes are on the server; `done` is the finished
    object's resource (with md5Hash and size) once all of them are."""

    stored: int
    done: dict[str, Any] | None = None


def open_session(blob: Any, size: int, content_type: str, timeout: Any, retry: Any) -> str:
    """A new session for `blob` (its metadata goes with it); returns the session URI."""
    return str(
        blob.create_resumable_upload_session(
            content_type=content_type, size=size, timeout=timeout, checksum=None, retry=retry
        )
    )


def query(http: Any, uri: str, total: int, timeout: Any) -> Progress:
    """Ask the session how many bytes it holds (one empty request)."""
    response = _put(
        http, uri, data=b"", headers={"Content-Range": f"bytes */{total}"}, timeout=timeout
    )
    return _progress(response, total)


def send_from(
    http: Any,
    uri: str,
    data: bytes,
    offset: int,
    timeout: Any,
    on_bytes: Callable[[int], None] | None = None,
) -> Progress:
    """Send `data[offset:]` as the rest of the object. Returns the server's answer: `done`
    when the object is complete, else where it stands (a server that took only part)."""
    total = len(data)
    if offset >= total:
        return query(http, uri, total, timeout)
    body = _Body(memoryview(data)[offset:], on_bytes)
    response = _put(
        http,
        uri,
        data=body,
        headers={
            "Content-Range": f"bytes {offset}-{total - 1}/{total}",
            "Content-Length": str(total - offset),
        },
        timeout=timeout,
    )
    return _progress(response, total)


def _progress(response: Any, total: int) -> Progress:
    status = response.status_code
    if status in (200, 201):
        return Progress(stored=total, done=response.json())
    if status == 308:
        match = _RANGE.fullmatch(response.headers.get("Range", "").strip())
        return Progress(stored=int(match.group(1)) + 1 if match else 0)
    if status in (404, 410):
        raise SessionGoneError(f"upload session answered {status}")
    from google.api_core import exceptions as gexc

    # 4xx/5xx as the client library's own exceptions, so kiosk.cases.link tells a server in
    # trouble (back off) from a refused request the same way for every upload; without
    # from_http_response's text, which names the URI.
    raise gexc.from_http_status(status, f"upload session answered {status}", response=response)


def _put(http: Any, uri: str, **request: Any) -> Any:
    """One request to the session. A failed one is raised as its own type (kiosk.cases.link
    reads that) with a text that leaves out the URI: it ends up in logs and stored errors."""
    import requests

    try:
        return http.put(uri, **request)
    except requests.RequestException as e:
        raise type(e)(f"{type(e).__name__} on an upload session request") from None


class _Body:
    """A request body read in SEND_BLOCK pieces, telling `on_bytes` as each goes out."""

    def __init__(self, view: memoryview, on_bytes: Callable[[int], None] | None) -> None:
        self._view = view
        self._at = 0
        self._on_bytes = on_bytes

    def __len__(self) -> int:
        return len(self._view)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = len(self._view) - self._at
        piece = bytes(self._view[self._at : self._at + min(size, SEND_BLOCK)])
        self._at += len(piece)
        if piece and self._on_bytes is not None:
            self._on_bytes(len(piece))
        return piece
