"""Session secret, CSRF tokens and response headers for the review console."""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Response, abort, request, session

from cloud.private_files import require_private, write_private

CSRF_FIELD = "csrf_token"
# Where a login may send the user on: a path on this site and a plain query, nothing else. No
# percent-escapes, backslashes, whitespace or control characters (browsers drop a tab, so
# "/\t/evil.example" becomes "//evil.example"), and never "//" at the start (another host).
_SAFE_NEXT = re.compile(r"^/(?![/\\])[A-Za-z0-9/_.~-]*(\?[A-Za-z0-9_.~=&+-]*)?$")

# Pages show patient pictures and results: nothing external, nothing framed, nothing cached.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "form-action 'self'; "
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
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def secure_cookies(host: str, configured: bool | None) -> bool:
    """Cookies are Secure whenever the console listens anywhere but loopback, whatever the
    configuration says (a session cookie must never cross a network in clear); on loopback
    (behind a TLS proxy on the same host) the setting may switch them on."""
    return bool(configured) or not is_loopback(host)


def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else "" (the caller goes to the queue)."""
    if target and len(target) <= 512 and _SAFE_NEXT.fullmatch(target):
        return target
    return ""


def client_address(remote_addr: str, forwarded_for: str, trusted_proxies: frozenset[str]) -> str:
    """The address of the client behind the request. X-Forwarded-For is believed only when the
    request comes from a trusted proxy (anyone else could write anything there), and then only
    its last hop that is not itself a trusted proxy: entries further left were written by the
    client."""
    if remote_addr not in trusted_proxies or not forwarded_for:
        return remote_addr
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if hop in trusted_proxies:
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return remote_addr
    return remote_addr


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
