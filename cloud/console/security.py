"""Session secret, CSRF tokens and response headers for the review console."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Response, abort, request, session

from cloud.private_files import require_private, write_private

CSRF_FIELD = "csrf_token"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Pages show patient pictures and results: nothing external, nothing framed, nothing cached.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def session_secret(path: Path) -> bytes:
    """The key that signs session cookies: made once, kept 0600, so sessions survive a
    restart of the console but no one else can forge them."""
    if not path.exists():
        write_private(path, secrets.token_bytes(32))
    return require_private(path, "console session key")


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK


def csrf_token() -> str:
    """This session's token, put in every form (made on first use)."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """Refuse a state-changing request without this session's token (and, when the browser
    says where the request comes from, from another site)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(str(expected), sent):
        abort(400, description="The form's security token is missing or out of date.")
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        abort(400, description="The form was sent from another site.")


def add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def cookie_settings(secure: bool, session_hours: float) -> dict[str, Any]:
    from datetime import timedelta

    return {
        "SESSION_COOKIE_NAME": "skinscan_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Strict",
        "SESSION_COOKIE_SECURE": secure,
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=session_hours),
    }
