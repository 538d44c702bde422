"""The model-name grammar, used by every surface.

``[host[:port]/][namespace/]model[:tag][@sha256:<hex>]`` with defaults host ``openzoo.local``,
namespace ``library`` and tag ``latest``. A tag is present only when the last ``:`` follows the last
``/`` (so ``127.0.0.1:8080/x`` has a port, not a tag). Parts follow Ollama's character rules, which
also rule out path traversal (``..``), empty parts and over-long names, so a valid name is always safe
to use as a path component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openzoo.errors import InvalidName

DEFAULT_HOST = "openzoo.local"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
_DIGEST = re.compile(r"sha256[:-][0-9a-f]{64}")
MAX_NAME_LENGTH = 512


@dataclass(frozen=True, slots=True)
class ModelName:
    """A parsed, validated model name. Compare with :attr:`key` (names match case-insensitively)."""

    host: str
    namespace: str
    model: str
    tag: str
    digest: str | None = None

    @property
    def key(self) -> str:
        """The canonical, lower-cased full name used as the catalog key."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}".lower()

    @property
    def display(self) -> str:
        """The short form people see: default host and namespace dropped (``gemma3:270m``)."""
        prefix = ""
        if self.host != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        return f"{prefix}{self.model}:{self.tag}"

    @property
    def is_remote(self) -> bool:
        return self.host != DEFAULT_HOST

    @property
    def repository(self) -> str:
        """``namespace/model``, the repository path a registry serves."""
        return f"{self.namespace}/{self.model}"

    def with_host(self, host: str) -> ModelName:
        return ModelName(host, self.namespace, self.model, self.tag, self.digest)

    def __str__(self) -> str:
        return self.display


def _fail(name: str, why: str) -> InvalidName:
    return InvalidName(f'invalid model name "{name}": {why}')


def parse(name: str) -> ModelName:
    """Parse and validate a model name; raise :class:`InvalidName` saying what is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidName("invalid model name: the name is empty")
    text = name.strip()
    if len(text) > MAX_NAME_LENGTH:
        raise _fail(text[:40] + "…", f"longer than {MAX_NAME_LENGTH} characters")
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise _fail(name, "the digest must be sha256:<64 hex digits>")
        digest = "sha256:" + digest[7:]
    tag = DEFAULT_TAG
    last_colon, last_slash = text.rfind(":"), text.rfind("/")
    if last_colon > last_slash:
        text, tag = text[:last_colon], text[last_colon + 1:]
        if not tag:
            raise _fail(name, "the tag after ':' is empty")
    parts = text.split("/")
    if any(part == "" for part in parts):
        raise _fail(name, "it has an empty part (check for '//' or a leading or trailing '/')")
    if len(parts) > 3:
        raise _fail(name, "use at most host/namespace/model")
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if len(parts) == 3:
        host, namespace, model = parts
    elif len(parts) == 2:
        namespace, model = parts
    else:
        (model,) = parts
    if len(parts) == 3 and not _HOST.fullmatch(host):
        raise _fail(name, f'"{host}" is not a valid host')
    if not _NAMESPACE.fullmatch(namespace):
        raise _fail(name, f'"{namespace}" is not a valid namespace (letters, digits, _ and -, up to 80)')
    if not _PART.fullmatch(model) or model in {".", ".."}:
        raise _fail(name, f'"{model}" is not a valid model (letters, digits, _ . and -, up to 80)')
    if not _PART.fullmatch(tag) or tag in {".", ".."}:
        raise _fail(name, f'"{tag}" is not a valid tag (letters, digits, _ . and -, up to 80)')
    return ModelName(host.lower(), namespace.lower(), model.lower(), tag.lower(), digest)


def is_digest(text: str) -> bool:
    """True for ``sha256:<hex>`` or ``sha256-<hex>``."""
    return bool(_DIGEST.fullmatch(text))


def normalize_digest(text: str) -> str:
    """``sha256-<hex>`` or ``sha256:<hex>`` → ``sha256:<hex>``; raise for anything else."""
    from openzoo.errors import InvalidRequest

    if not is_digest(text):
        raise InvalidRequest(f'invalid digest "{text}": expected sha256:<64 hex digits>')
    return "sha256:" + text[7:]
