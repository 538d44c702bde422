"""The shape of a replicated deployment: ``openzoo serve --replicas N`` or ``--config serve.yaml``.

These are options of one command, not process-wide settings: the ``OPENZOO_*`` environment
(``config.py``) still decides the home, the address and each engine's slots, context and threads.
Parsing is pure (no Ray import), so a bad file fails before any process starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from openzoo.errors import InvalidRequest

HINT = "see docs/scale-out.md for serve.yaml's keys"
MIN_OBJECT_STORE_MB = 80  # Ray refuses less than 75 MiB


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    """How many replicas, what each may use, and which Ray cluster runs them.

    ``ray_address`` None starts a private local Ray instance with ``ray_num_cpus`` logical CPUs
    (default: ``replicas * replica_cpus``) and a small object store; an address (``auto``,
    ``host:port``) joins a running cluster whose nodes must see the same ``OPENZOO_HOME``.
    ``max_ongoing_requests`` 0 lets each replica take ``OPENZOO_NUM_PARALLEL + OPENZOO_MAX_QUEUE``
    requests, what its engine would accept; Serve's router queues the rest in front.
    """

    replicas: int = 1
    replica_cpus: float = 1.0
    max_ongoing_requests: int = 0
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    object_store_mb: int = 100
    name: str = "openzoo"

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise InvalidRequest(f"replicas must be at least 1, not {self.replicas}", hint=HINT)
        if self.replica_cpus <= 0:
            raise InvalidRequest(f"replica_cpus must be positive, not {self.replica_cpus}", hint=HINT)
        if self.max_ongoing_requests < 0:
            raise InvalidRequest("max_ongoing_requests must be 0 (automatic) or more", hint=HINT)
        if self.ray_num_cpus is not None and self.ray_num_cpus < 1:
            raise InvalidRequest("ray_num_cpus must be at least 1", hint=HINT)
        if self.object_store_mb < MIN_OBJECT_STORE_MB:
            raise InvalidRequest(f"object_store_mb must be at least {MIN_OBJECT_STORE_MB}", hint=HINT)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", self.name):
            raise InvalidRequest(f"name {self.name!r} must be letters, digits, '-' or '_'", hint=HINT)

    @property
    def local_cpus(self) -> int:
        """Logical CPUs of a private local Ray instance: enough for every replica."""
        if self.ray_num_cpus is not None:
            return self.ray_num_cpus
        return max(1, int(-(-self.replicas * self.replica_cpus // 1)))

    def threads(self, num_threads: int) -> int:
        """llama.cpp threads per replica: OPENZOO_NUM_THREADS when set, else the replica's CPUs."""
        return num_threads if num_threads > 0 else max(1, int(self.replica_cpus))

    def ongoing(self, num_parallel: int, max_queue: int) -> int:
        return self.max_ongoing_requests or max(1, num_parallel + max_queue)


_TYPES: dict[str, tuple[type, ...]] = {
    "replicas": (int,), "replica_cpus": (int, float), "max_ongoing_requests": (int,),
    "ray_address": (str, type(None)), "ray_num_cpus": (int, type(None)), "object_store_mb": (int,),
    "name": (str,),
}


def load_spec(path: Path | None = None, replicas: int | None = None) -> ScaleSpec | None:
    """The spec from ``path`` (a serve.yaml) with ``replicas`` overriding it; None when neither is given."""
    if path is None and replicas is None:
        return None
    spec = ScaleSpec() if path is None else parse(_read(path), str(path))
    return spec if replicas is None else replace(spec, replicas=replicas)


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror or exc}", hint=HINT) from exc
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"{path} is not valid YAML: {exc}", hint=HINT) from exc


def parse(data: Any, source: str = "serve.yaml") -> ScaleSpec:
    """A spec from a parsed YAML mapping; unknown keys and wrong types are errors, never ignored."""
    if data is None:
        return ScaleSpec()
    if not isinstance(data, dict):
        raise InvalidRequest(f"{source} must be a mapping of keys to values", hint=HINT)
    known = {f.name for f in fields(ScaleSpec)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise InvalidRequest(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                             hint=HINT)
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, _TYPES[key]):
            raise InvalidRequest(f"{source}: {key} has the wrong type ({type(value).__name__})", hint=HINT)
    values = dict(data)
    if "replica_cpus" in values:
        values["replica_cpus"] = float(values["replica_cpus"])
    return ScaleSpec(**values)
