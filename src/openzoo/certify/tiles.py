"""C2SP tlog-tiles: the zoo's log served as immutable tiles of hashes and bundles of entries.

Why tiles: instead of computing a proof per request, the log publishes its Merkle tree cut into fixed
pieces that any client (Go's ``sumdb/tlog``, Rekor v2 and Sunlight clients, witnesses' feeders) fetches
and caches, then computes any inclusion or consistency proof itself. Full tiles never change, so CDNs
and browsers can keep them forever.

The tree is the RFC 9162 tree the log always had (:mod:`.merkle`): tile ``L/N`` holds up to 256 hashes
of complete subtrees of ``256**L`` leaves, i.e. the log's stored nodes of level ``8 * L`` from index
``256 * N``; level 0 tiles are leaf hashes. ``tile/entries/N`` holds the entries themselves, each as a
big-endian uint16 length and the bytes that hash to its leaf (:func:`openzoo.certify.log.entry_bytes`).

Paths (relative to ``/zoo/log/``): ``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``, with ``N``
in 3-digit groups, all but the last prefixed with ``x`` (1234067 is ``x001/x234/067``), and ``W`` the
width (1-255) of a partial tile. A tile past the tree is :class:`~openzoo.errors.NotFound`; a path that is
not one of these is :class:`~openzoo.errors.InvalidRequest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from openzoo.errors import InvalidRequest, NotFound, NotSupported

__all__ = ["MAX_ENTRY_BYTES", "TILE_WIDTH", "TilePath", "TileSource", "format_index", "parse_tile_path",
           "read_tile"]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF  # an entry bundle's uint16 length prefix
_LEVEL = re.compile(r"^(0|[1-9][0-9]?)$")
_WIDTH = re.compile(r"^[1-9][0-9]{0,2}$")
_GROUP = re.compile(r"^x?[0-9]{3}$")


class TileSource(Protocol):
    """What a tile is cut from (:class:`openzoo.certify.log.TransparencyLog`)."""

    def size(self) -> int: ...

    def hashes(self, level: int, start: int, count: int) -> list[bytes]: ...

    def entry_data(self, start: int, count: int) -> list[bytes]: ...


@dataclass(frozen=True)
class TilePath:
    """One tile: ``level`` None for an entry bundle; ``width`` 256 for a full tile, 1-255 for a partial one."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    def path(self) -> str:
        """The spec's path, e.g. ``tile/0/x001/234.p/5`` or ``tile/entries/000``."""
        level = "entries" if self.level is None else str(self.level)
        return f"tile/{level}/{format_index(self.index)}" + ("" if self.full else f".p/{self.width}")


def format_index(index: int) -> str:
    """``N`` in 3-digit path elements, all but the last prefixed with ``x``: 1234067 -> ``x001/x234/067``."""
    if index < 0:
        raise InvalidRequest("a tile index is not negative")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def parse_tile_path(path: str) -> TilePath:
    """Parse ``tile/...`` (or the part after ``tile/``); InvalidRequest naming the spec's form otherwise."""
    bad = InvalidRequest(f"not a tile path: {path[:80]!r}",
                         hint="tiles are tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>], N as x001/x234/067")
    parts = path.removeprefix("tile/").split("/")
    if len(path) > 200 or len(parts) < 2:
        raise bad
    level_part, rest = parts[0], parts[1:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _WIDTH.fullmatch(rest[-1]) or int(rest[-1]) >= TILE_WIDTH:
            raise bad
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][:-2]]
    if not rest or not all(_GROUP.fullmatch(g) for g in rest):
        raise bad
    if any(g.startswith("x") for g in rest[-1:]) or not all(g.startswith("x") for g in rest[:-1]):
        raise bad
    index = int("".join(g.removeprefix("x") for g in rest))
    if format_index(index) != "/".join(rest):  # e.g. a leading x000 group: one tile, one path
        raise bad
    if level_part == "entries":
        return TilePath(None, index, width)
    if not _LEVEL.fullmatch(level_part) or int(level_part) > MAX_LEVEL:
        raise bad
    return TilePath(int(level_part), index, width)


def read_tile(source: TileSource, tile: TilePath, size: int | None = None) -> bytes:
    """The tile's bytes in the tree of ``size`` entries (default: the whole log).

    NotFound when the tree has not (yet) as many hashes as the tile spans; NotSupported for an entry
    longer than a bundle's uint16 length can say.
    """
    size = source.size() if size is None else size
    level = 0 if tile.level is None else tile.level
    available = size >> (TILE_HEIGHT * level)  # complete subtrees of 256**level leaves
    start = tile.index * TILE_WIDTH
    if start + tile.width > available:
        what = "entry bundle" if tile.level is None else "tile"
        raise NotFound(f"{what} {tile.path()} is past the log's tree of {size} entries",
                       hint="fetch /zoo/log/checkpoint for the tree size, then only the tiles it needs")
    if tile.level is not None:
        hashes = source.hashes(TILE_HEIGHT * tile.level, start, tile.width)
        if len(hashes) != tile.width:
            raise NotFound(f"tile {tile.path()} is not stored yet")
        return b"".join(hashes)
    out = bytearray()
    entries = source.entry_data(start, tile.width)
    for offset, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_BYTES:
            raise NotSupported(f"log entry {start + offset} is {len(entry)} bytes, more than an entry bundle's "
                               f"{MAX_ENTRY_BYTES}", hint="read it from /zoo/log/entries instead")
        out += len(entry).to_bytes(2, "big") + entry
    if len(entries) != tile.width:
        raise NotFound(f"entry bundle {tile.path()} is not stored yet")
    return bytes(out)
