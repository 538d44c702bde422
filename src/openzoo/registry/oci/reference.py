"""``oci://HOST[:PORT]/REPO[:TAG|@DIGEST]``: the one place an OCI reference is parsed and validated.

Why a grammar of its own: OCI repositories may have any number of path components and tags up to 128
characters, which openzoo's model names (:mod:`openzoo.names`) deliberately do not allow. Rather than
bend that grammar, an OCI reference is parsed here with the distribution spec's own rules (repository
components ``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*``, tag ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``) plus what
openzoo needs (sha256 digests only, a host that is a plain name or address), and mapped to a local model
name only at the end (:meth:`OciReference.local_name`). Anything that could escape a path (``..``,
``%2e``, backslashes, empty components) fails the component rule, so a valid reference is always safe
in a URL path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openzoo import names
from openzoo.errors import InvalidName

__all__ = ["SCHEME", "OciReference", "is_oci", "parse_reference"]

SCHEME = "oci://"
MAX_REPOSITORY_LENGTH = 255
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{{1,5}}))?")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def is_oci(text: str) -> bool:
    """True when ``text`` names an OCI registry reference (``oci://…``) rather than a model name."""
    return isinstance(text, str) and text.strip().lower().startswith(SCHEME)


@dataclass(frozen=True, slots=True)
class OciReference:
    """A parsed reference: registry host (with port), repository path, and a tag and/or digest."""

    host: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """What the registry's manifest endpoint takes: the digest when given, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def display(self) -> str:
        tail = (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")
        return f"{SCHEME}{self.host}/{self.repository}{tail}"

    def __str__(self) -> str:
        return self.display

    def local_name(self) -> names.ModelName:
        """The model name a pull tags: ``HOST:PORT/NAMESPACE/MODEL:TAG`` from the repository's last two
        components (``library`` when there is one). Deeper repositories, or parts openzoo's names do not
        allow, need an explicit ``--name``."""
        parts = self.repository.split("/")
        if len(parts) > 2:
            raise InvalidName(f"{self.display} has {len(parts)} repository components; openzoo names have at "
                              "most a namespace and a model", hint="pass --name NAMESPACE/MODEL:TAG")
        namespace, model = (parts[0], parts[1]) if len(parts) == 2 else (names.DEFAULT_NAMESPACE, parts[0])
        tag = self.tag or f"sha256-{(self.digest or '')[7:19]}"
        try:
            return names.parse(f"{self.host}/{namespace}/{model}:{tag}")
        except InvalidName as exc:
            raise InvalidName(f"{self.display} has no matching openzoo name: {exc.message}",
                              hint="pass --name NAMESPACE/MODEL:TAG") from exc


def _fail(text: str, why: str) -> InvalidName:
    shown = text if len(text) <= 120 else text[:117] + "..."
    return InvalidName(f'invalid OCI reference "{shown}": {why}',
                       hint="use oci://HOST[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST], e.g. oci://127.0.0.1:5000/library/"
                            "tiny:v1")


def parse_reference(text: str, *, default_tag: str | None = "latest") -> OciReference:
    """Parse and validate ``oci://HOST[:PORT]/REPO[:TAG|@DIGEST]``; raise :class:`InvalidName` saying what
    is wrong. Without a tag or digest the tag is ``default_tag``."""
    if not isinstance(text, str) or not is_oci(text):
        raise _fail(str(text), "it must start with oci://")
    raw = text.strip()
    if len(raw) > 600:
        raise _fail(raw, "it is longer than 600 characters")
    if any(c.isspace() or ord(c) < 0x20 or c in "\\?#%" for c in raw):
        raise _fail(raw, "it contains spaces, control characters, '\\', '?', '#' or '%'")
    rest = raw[len(SCHEME):]
    host, slash, path = rest.partition("/")
    if not slash or not path:
        raise _fail(raw, "it names no repository after the host")
    match = _HOST.fullmatch(host)
    if match is None:
        raise _fail(raw, f'"{host}" is not a valid registry host')
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise _fail(raw, f"port {port} is out of range")
    digest: str | None = None
    if "@" in path:
        path, digest = path.rsplit("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise _fail(raw, "the digest must be sha256:<64 lowercase hex digits>")
    tag: str | None = None
    last_colon, last_slash = path.rfind(":"), path.rfind("/")
    if last_colon > last_slash:
        path, tag = path[:last_colon], path[last_colon + 1:]
        if not _TAG.fullmatch(tag):
            raise _fail(raw, f'"{tag}" is not a valid tag (letters, digits, _ . and -, up to 128, not starting '
                             "with . or -)")
    for component in path.split("/"):
        if component in ("", ".", ".."):
            raise _fail(raw, "the repository has an empty, '.' or '..' component (path traversal is refused)")
        if not _COMPONENT.fullmatch(component):
            raise _fail(raw, f'"{component}" is not a valid repository component (lowercase letters and digits, '
                             "separated by '.', '_', '__' or '-')")
    if len(host) + 1 + len(path) > MAX_REPOSITORY_LENGTH:
        raise _fail(raw, f"host and repository are longer than {MAX_REPOSITORY_LENGTH} characters")
    if tag is None and digest is None:
        tag = default_tag
    return OciReference(host.lower(), path, tag, digest)
