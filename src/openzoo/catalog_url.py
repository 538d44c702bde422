"""The catalog URL's grammar (``sqlite:///PATH`` or ``postgresql://...``) and how to print one safely.

A base module: :mod:`openzoo.config` checks ``OPENZOO_CATALOG_URL`` with it and :mod:`openzoo.store.db`
opens the URL, so configuration never imports the store.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["POSTGRES_SCHEMES", "SQLITE_PREFIX", "redact_url"]

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def redact_url(url: str) -> str:
    """The URL with its password (in the user part or a ``password=`` option) replaced by ``***``.

    URLs end up in logs and error messages; passwords must not.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:
        return "<unparseable URL>"
    if password is not None:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{urllib.parse.quote(parts.username or '', safe='')}:***@{host}" + (f":{port}" if port else "")
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    base, mark, query = url.partition("?")
    return base + mark + re.sub(r"(?i)(^|&)(password=)[^&#]*", r"\1\2***", query)
