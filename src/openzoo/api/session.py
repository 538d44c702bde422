"""Login cookie and cross-site request protection for the web pages.

- With ``OPENZOO_API_KEY`` set, the security middleware accepts the key from the ``openzoo_key`` cookie
  on ``/ui`` paths; the login form sets that cookie (HttpOnly, SameSite=Strict, Path=/ui).
- Every state-changing request (a POST form, the playground's chat call) must carry a CSRF token equal
  to the ``openzoo_csrf`` cookie (double submit); the cookie is SameSite=Strict, so another site can
  neither send it nor read the token, and the Origin header, when present, must be this server.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

KEY_COOKIE = "openzoo_key"
CSRF_COOKIE = "openzoo_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
COOKIE_PATH = "/ui"


def cookie(header: str, name: str) -> str:
    """One cookie's value from a ``Cookie`` header ("" when absent)."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_ok(cookie_value: str, supplied: str) -> bool:
    """A supplied CSRF token is valid when it equals the cookie (compared in constant time)."""
    return bool(cookie_value) and bool(supplied) and hmac.compare_digest(cookie_value.encode(), supplied.encode())


def same_origin(headers: Mapping[str, str]) -> bool:
    """False when an ``Origin`` (or, without one, a ``Referer``) names another host than ``Host``."""
    host = headers.get("host", "")
    origin = headers.get("origin")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc == host
    referer = headers.get("referer")
    return not referer or urlsplit(referer).netloc == host


def set_cookie_header(name: str, value: str, *, http_only: bool = True, max_age: int | None = None) -> str:
    """A ``Set-Cookie`` value scoped to the UI: Path=/ui, SameSite=Strict, HttpOnly by default."""
    parts = [f"{name}={value}", f"Path={COOKIE_PATH}", "SameSite=Strict"]
    if http_only:
        parts.append("HttpOnly")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; the first value of each field."""
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def safe_next(target: str) -> str:
    """Where to go after login: only a path inside the UI, never another site."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"
