"""A small HTTP client for a running openzoo server (used by the CLI when one answers).

Server errors arrive as ``{"error": "..."}`` with the stable code in ``X-Openzoo-Error-Code``; the
client turns them back into the matching :class:`OpenzooError`, so the CLI prints the same message
whether it ran the work itself or asked a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from openzoo import errors
from openzoo.config import Config

_BY_CODE: dict[str, type[errors.OpenzooError]] = {}


def _index(cls: type[errors.OpenzooError]) -> None:
    _BY_CODE.setdefault(cls.code, cls)
    for sub in cls.__subclasses__():
        _index(sub)


_index(errors.OpenzooError)


def _error(code: str | None, message: str, status: int) -> errors.OpenzooError:
    cls = _BY_CODE.get(code or "", errors.OpenzooError)
    if cls is errors.ModelNotFound:
        exc: errors.OpenzooError = errors.NotFound(message, hint=errors.ModelNotFound.hint)
        exc.code = errors.ModelNotFound.code
    else:
        try:
            exc = cls(message)
        except TypeError:  # a class whose constructor wants more than the message: keep its code and hint
            exc = errors.OpenzooError(message, hint=cls.hint)
            exc.code = cls.code
    exc.http_status = status
    return exc


class Client:
    def __init__(self, config: Config, timeout: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        host = "127.0.0.1" if config.host in {"0.0.0.0", "::", ""} else config.host
        base = config.replace(host=host).base_url
        self._http = httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(timeout, connect=2.0))

    def close(self) -> None:
        self._http.close()

    def is_up(self) -> bool:
        try:
            return self._http.get("/", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _raise(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text or f"HTTP {response.status_code}"
        raise _error(response.headers.get("X-Openzoo-Error-Code"), str(message), response.status_code)

    def get(self, path: str) -> Any:
        response = self._http.get(path)
        self._raise(response)
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self._http.post(path, json=body)
        self._raise(response)
        return response.json() if response.content else None

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON object; a mid-stream ``{"error"}`` line raises."""
        with self._http.stream("POST", path, json=body) as response:
            if response.status_code >= 400:
                response.read()
                self._raise(response)
            for line in response.iter_lines():
                if not line.strip():
                    continue
                obj = json.loads(line)
                if "error" in obj:
                    raise errors.OpenzooError(str(obj["error"]))
                yield obj
