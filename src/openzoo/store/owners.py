"""Who is writing: an owner tag per process (host, pid, a nonce) and whether a tag's process is gone.

Why: leftovers of a dead writer (a blob temp file, an audit job marked running) are cleaned up by the
next process that finds them, and it must never take a live writer's work for a leftover. Servers that
share a catalog and an ``OPENZOO_HOME`` may run on different hosts, where a process id means nothing,
so a tag names its host and only this host's process ids are checked. The nonce tells this process
from an earlier one that had the same pid (a restarted container is often pid 1 again).
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Owner", "host_name", "pid_alive", "this_process"]


def host_name() -> str:
    """This host's name, reduced to characters safe in a file name (servers need distinct names)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class Owner:
    host: str
    pid: int
    nonce: str

    @property
    def tag(self) -> str:
        return f"{self.host}:{self.pid}:{self.nonce}"

    @classmethod
    def parse(cls, tag: str) -> Owner | None:
        """The owner a :attr:`tag` names; None for anything else."""
        parts = tag.split(":")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])

    def is_gone(self) -> bool | None:
        """True when its process has certainly ended, False when it runs, None when it cannot be told.

        Only processes of this host can be checked; a process of another host is ``None`` (callers then
        go by a heartbeat).
        """
        if self.host != host_name():
            return None
        me = this_process()
        if self.pid == me.pid:
            return self.nonce != me.nonce
        return not pid_alive(self.pid)


@lru_cache(maxsize=4)
def _owner_for(pid: int) -> Owner:
    return Owner(host_name(), pid, uuid.uuid4().hex[:12])


def this_process() -> Owner:
    """This process's tag (a forked child gets its own)."""
    return _owner_for(os.getpid())
