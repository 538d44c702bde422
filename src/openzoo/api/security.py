"""Network safety beyond Ollama's: Host checks against DNS rebinding, CORS, and an optional API key.

One pure ASGI middleware, so that every route (and the web UI) is covered without a decorator to
forget. Rules:

- On a loopback bind the ``Host`` header must be a local name; a page on evil.example that rebinds
  its DNS to 127.0.0.1 gets 403.
- CORS answers only for localhost-like origins and those in ``OPENZOO_ORIGINS`` (``*`` wildcards).
- With ``OPENZOO_API_KEY`` set, every request needs ``Authorization: Bearer <key>`` or ``x-api-key:
  <key>`` (Anthropic's clients send that; compared in constant time) or, on ``/ui``, the login
  cookie; ``GET /``, the login form and the UI's static assets stay open, and a browser asking
  for another ``/ui`` page is redirected to the login form.
"""

from __future__ import annotations

import fnmatch
import hmac
import ipaddress
import json
import socket
from urllib.parse import quote

from fastapi.security import HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openzoo.api import session
from openzoo.api.errors import envelope
from openzoo.config import Config
from openzoo.errors import Forbidden, OpenzooError, Unauthorized

DEFAULT_ORIGINS = (
    "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
    "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
    "http://0.0.0.0", "https://0.0.0.0", "http://0.0.0.0:*", "https://0.0.0.0:*",
    "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
)
ALLOW_HEADERS = ("Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, "
                 "x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
                 "x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, "
                 "x-stainless-async, x-stainless-helper-method, x-stainless-timeout, "
                 "x-api-key, anthropic-version, anthropic-beta, anthropic-dangerous-direct-browser-access")
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"

#: How /openapi.json names the key of routes that need one even when ``OPENZOO_API_KEY`` guards nothing
#: else (pushes into this zoo's registry). The middleware checks it; this only declares it.
API_KEY_SCHEME = HTTPBearer(auto_error=False, scheme_name="OPENZOO_API_KEY",
                            description="this zoo's OPENZOO_API_KEY as 'Authorization: Bearer <key>' (or x-api-key)")


def is_loopback(host: str) -> bool:
    if host in {"localhost", ""}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_allowed(host_header: str) -> bool:
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if not host or host in {"localhost", socket.gethostname().lower()}:
        return True
    if host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, config: Config) -> None:
        self.app = app
        self.check_host = is_loopback(config.host)
        self.origins = DEFAULT_ORIGINS + config.origins
        self.api_key = config.api_key

    def origin_allowed(self, origin: str) -> bool:
        return any(fnmatch.fnmatchcase(origin, pattern) for pattern in self.origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        if self.check_host and not _host_allowed(headers.get("host", "")):
            await _reply(send, path, Forbidden("host not allowed: use a local name to reach this server"))
            return
        origin = headers.get("origin")
        cors: list[tuple[bytes, bytes]] = []
        if origin is not None:
            if not self.origin_allowed(origin):
                await _refuse_origin(send)
                return
            cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
            if scope["method"] == "OPTIONS":
                await send({"type": "http.response.start", "status": 204, "headers": [
                    *cors, (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                    (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                    (b"access-control-max-age", b"86400")]})
                await send({"type": "http.response.body", "body": b""})
                return
        open_path = (path == "/" and scope["method"] in {"GET", "HEAD"}) or path == "/ui/login" \
            or path.startswith("/ui/static/")
        if self.api_key and not open_path and not self._authorized(headers, path):
            if path.startswith("/ui") and scope["method"] in {"GET", "HEAD"}:
                # a person in a browser: send them to the login form rather than a JSON error
                target = quote(path + ("?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""))
                await send({"type": "http.response.start", "status": 303,
                            "headers": [(b"location", f"/ui/login?next={target}".encode()),
                                        (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            await _reply(send, path, Unauthorized("unauthorized: send 'Authorization: Bearer <OPENZOO_API_KEY>'"),
                         extra=cors)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and cors:
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _authorized(self, headers: dict[str, str], path: str) -> bool:
        supplied = headers.get("authorization", "")
        if supplied.lower().startswith("bearer "):
            token = supplied[7:].strip()
        elif headers.get("x-api-key"):
            token = headers["x-api-key"].strip()
        elif path.startswith("/ui"):
            token = session.cookie(headers.get("cookie", ""), session.KEY_COOKIE)
        else:
            token = ""
        return bool(token) and hmac.compare_digest(token.encode(), self.api_key.encode())


async def _reply(send: Send, path: str, error: OpenzooError, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer before the app runs, in the envelope of ``path``'s API (the one mapping, :mod:`.errors`)."""
    status, payload, error_headers = envelope(path, error)
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"),
               *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error_headers.items())]
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


async def _refuse_origin(send: Send) -> None:
    """A browser page of another origin: 403 with no body (the browser shows it no response anyway)."""
    await send({"type": "http.response.start", "status": 403, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
