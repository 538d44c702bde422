"""The catalog table: one row of facts per model, and the pure search, filter and sort over rows.

Rows are built from the same domain calls as ``/api/tags`` and ``show`` (:mod:`openzoo.web.facts`);
everything below :class:`Filters` is pure so it is unit-tested without a store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

SealStatus = Literal["certified", "pending", "revoked", "none"]
SEAL_STATUSES: tuple[SealStatus, ...] = ("certified", "pending", "revoked", "none")
LICENSE_KINDS = ("open-source", "open-content", "restricted", "unknown")
OPENNESS_CHOICES = ("III", "II", "I", "none")
SIZE_BUCKETS: dict[str, tuple[int, int | None]] = {
    "small": (0, 1 << 30),  # under 1 GiB
    "medium": (1 << 30, 8 << 30),  # 1 to 8 GiB
    "large": (8 << 30, None),  # 8 GiB and more
}
SIZE_LABELS = {"small": "under 1 GiB", "medium": "1 to 8 GiB", "large": "8 GiB or more"}
SORT_KEYS = ("name", "size", "family", "license", "openness", "seal", "modified")


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """What the catalog shows about one model."""

    name: str
    size: int
    family: str
    parameter_size: str
    quantization: str
    license_id: str
    license_name: str
    license_kind: str  # open-source, open-content, restricted, unknown
    openness: str  # MOF class "III", "II", "I", or "none" (unclassified)
    seal: SealStatus
    modified_at: float
    digest: str = ""

    @property
    def certified(self) -> bool:
        return self.seal == "certified"


@dataclass(frozen=True, slots=True)
class Filters:
    """The catalog's query string, validated: unknown values are dropped, never an error."""

    q: str = ""
    openness: str = ""
    license: str = ""
    size: str = ""
    certified: bool = False
    sort: str = "name"
    descending: bool = False
    compare: tuple[str, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        return bool(self.q or self.openness or self.license or self.size or self.certified)


def parse_filters(params: Mapping[str, str]) -> Filters:
    """Filters from query parameters (``q``, ``openness``, ``license``, ``size``, ``certified``, ``sort``,
    ``order``); values outside the known choices are ignored."""
    sort = params.get("sort", "name")
    return Filters(
        q=params.get("q", "").strip()[:200],
        openness=params.get("openness", "") if params.get("openness", "") in OPENNESS_CHOICES else "",
        license=params.get("license", "") if params.get("license", "") in LICENSE_KINDS else "",
        size=params.get("size", "") if params.get("size", "") in SIZE_BUCKETS else "",
        certified=params.get("certified", "") in {"1", "on", "true", "yes"},
        sort=sort if sort in SORT_KEYS else "name",
        descending=params.get("order", "") == "desc",
    )


def _matches(row: CatalogRow, f: Filters) -> bool:
    if f.q:
        haystack = " ".join([row.name, row.family, row.parameter_size, row.quantization, row.license_name,
                             row.license_id]).lower()
        if not all(word in haystack for word in f.q.lower().split()):
            return False
    if f.openness and row.openness != f.openness:
        return False
    if f.license and row.license_kind != f.license:
        return False
    if f.size:
        low, high = SIZE_BUCKETS[f.size]
        if row.size < low or (high is not None and row.size >= high):
            return False
    return not (f.certified and not row.certified)


_OPENNESS_ORDER = {"III": 0, "II": 1, "I": 2, "none": 3}
_KEYS: dict[str, Callable[[CatalogRow], Any]] = {
    "name": lambda r: r.name.lower(),
    "size": lambda r: r.size,
    "family": lambda r: (r.family.lower(), r.name.lower()),
    "license": lambda r: (LICENSE_KINDS.index(r.license_kind) if r.license_kind in LICENSE_KINDS else 9,
                          r.name.lower()),
    # Best class first: III (open model) is the entry class, I (open science) the most open.
    "openness": lambda r: (-_OPENNESS_ORDER.get(r.openness, 9) if r.openness in ("III", "II", "I") else 9,
                           r.name.lower()),
    "seal": lambda r: (SEAL_STATUSES.index(r.seal), r.name.lower()),
    "modified": lambda r: -r.modified_at,
}


def select(rows: Sequence[CatalogRow], f: Filters) -> list[CatalogRow]:
    """Rows that match ``f``, sorted by ``f.sort`` (ties by name)."""
    kept = [row for row in rows if _matches(row, f)]
    kept.sort(key=lambda r: r.name.lower())
    kept.sort(key=_KEYS[f.sort], reverse=f.descending)
    return kept


def sort_link(f: Filters, key: str) -> dict[str, str]:
    """Query parameters that sort by ``key``, flipping the order when it is already the sort key."""
    flipped = replace(f, sort=key, descending=(not f.descending) if f.sort == key else False)
    return to_params(flipped)


def to_params(f: Filters) -> dict[str, str]:
    """The query parameters that reproduce ``f`` (defaults left out)."""
    out = {"q": f.q, "openness": f.openness, "license": f.license, "size": f.size,
           "certified": "1" if f.certified else "", "sort": "" if f.sort == "name" else f.sort,
           "order": "desc" if f.descending else ""}
    return {k: v for k, v in out.items() if v}


def human_size(n: int) -> str:
    """Bytes for people, in binary units: ``253 MiB``, ``1.5 GiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_timestamp(ts: float | int | None) -> str:
    """A log or request time for people, in UTC; accepts seconds or milliseconds since the epoch."""
    import datetime as dt

    if ts is None:
        return "—"
    seconds = ts / 1000 if ts > 1e11 else ts
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def sentence(text: str) -> str:
    """``text`` with its first letter upper-cased and the rest untouched (Jinja's ``capitalize`` lowers it)."""
    return text[:1].upper() + text[1:]
