"""Start and stop what ``openzoo serve --replicas`` runs on: Ray, Serve, the board and the replicas.

With no ``ray_address`` a private local Ray instance is started for this server and shut down with
it: explicit logical CPUs, no dashboard, no usage stats, a small object store, no Serve HTTP proxy
(the front serves HTTP). With an address, the server joins that cluster and removes only its own
Serve application when it stops.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openzoo.config import Config
from openzoo.errors import EngineError, NotSupported
from openzoo.inference import InferenceService
from openzoo.scale.spec import ScaleSpec
from openzoo.services import Services

log = logging.getLogger("openzoo.scale")

GRACEFUL_SHUTDOWN_SECONDS = 5.0
START_ATTEMPTS = 3


@dataclass
class ReplicaPool:
    """A running deployment: its handle and board, ready to back a :class:`Services`."""

    spec: ScaleSpec
    handle: Any  # ray.serve.handle.DeploymentHandle
    board: Any  # ray.actor.ActorHandle of a Board

    def inference(self, services: Services) -> InferenceService:
        """``Services.inference_factory``: the front's models and metrics over these replicas."""
        from openzoo.scale.remote import ReplicatedInference

        return ReplicatedInference(self.handle, self.board, services.models, services.metrics)


@contextmanager
def replica_pool(config: Config, spec: ScaleSpec) -> Iterator[ReplicaPool]:
    """Run ``spec.replicas`` engine replicas for the life of the block; always shut Ray down after."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # inherited by the Ray processes started here
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise NotSupported("openzoo serve --replicas needs Ray Serve, which is not installed",
                           hint="pip install 'openzoo[scale]'") from exc
    from openzoo.scale.board import Board
    from openzoo.scale.replica import EngineReplica

    local = spec.ray_address is None
    level = logging.INFO if config.debug else logging.WARNING
    options: dict[str, Any] = {"namespace": spec.name, "log_to_driver": config.debug, "logging_level": level}
    if local:
        _start_local(ray, spec, options)
    else:
        ray.init(address=spec.ray_address, **options)
    logging.getLogger("ray.serve").setLevel(level)
    try:
        serve.start(proxy_location="Disabled", logging_config={"log_level": logging.getLevelName(level)})
        board_name = f"{spec.name}-board"
        board = ray.remote(Board).options(name=board_name, num_cpus=0).remote()
        deployment: Any = serve.deployment(
            EngineReplica, name="engine", num_replicas=spec.replicas,
            ray_actor_options={"num_cpus": spec.replica_cpus},
            max_ongoing_requests=spec.ongoing(config.num_parallel, config.max_queue),
            graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_SECONDS, max_constructor_retry_count=3)
        # Replicas serve no HTTP: the API key stays in the front, out of Serve's stored deployment config.
        replica_config = config.replace(num_threads=spec.threads(config.num_threads), api_key="")
        try:
            handle = serve.run(deployment.bind(replica_config, board_name, spec.name), name=spec.name,
                               route_prefix=None)
        except RuntimeError as exc:
            raise EngineError(f"the inference replicas did not start: {exc}",
                              hint="see the replica logs under /tmp/ray/session_latest/logs/serve") from exc
        log.info("%d replica(s) of %s running", spec.replicas, spec.name)
        yield ReplicaPool(spec, handle, board)
    finally:
        with suppress(Exception):
            if local:
                serve.shutdown()  # type: ignore[no-untyped-call]
            else:
                serve.delete(spec.name)
        ray.shutdown()
        log.info("stopped the inference replicas%s", " and the local Ray instance" if local else "")


def _start_local(ray: Any, spec: ScaleSpec, options: dict[str, Any]) -> None:
    """Start a private Ray instance; start it again if its node missed Ray's fixed startup deadline.

    Ray gives a new node's raylet 30 s to register with the GCS, which a busy two-core machine can
    miss. The processes of the failed attempt are this process's children: stop them (by pid) first.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        before = set(_children())
        try:
            ray.init(address="local", num_cpus=spec.local_cpus, include_dashboard=False,
                     object_store_memory=spec.object_store_mb * 1024 * 1024, **options)
            return
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == START_ATTEMPTS:
                raise EngineError(f"the local Ray instance did not start: {exc}",
                                  hint="see /tmp/ray/session_latest/logs; a busy machine may need another try"
                                  ) from exc
            for pid in set(_children()) - before:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            log.warning("the local Ray node missed its startup deadline (attempt %d); starting it again", attempt)


def _children() -> list[int]:
    """This process's child processes (Linux /proc; elsewhere none are found)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found
