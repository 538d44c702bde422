"""Wiring: the domain services of one openzoo process, built once from a :class:`Config`.

The HTTP app and the in-process CLI both start here, so they share one store, one scheduler and one
engine per model, never two implementations. ``openzoo serve --replicas`` passes an
``inference_factory`` that hands inference to Ray Serve replicas (``scale/``); each replica builds
its own ``Services`` (without store recovery: the front owns the store's writes) around the same home.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

from openzoo.config import Config
from openzoo.datasets.service import Datasets
from openzoo.events import Progress
from openzoo.inference import Inference, InferenceService
from openzoo.metrics import Metrics
from openzoo.models import DEFAULT_MODEL, Models
from openzoo.runtime.scheduler import Scheduler
from openzoo.store.store import Store
from openzoo.transfers import Transfers

log = logging.getLogger("openzoo")


@dataclass
class Services:
    config: Config
    #: How inference runs; None runs it on this process's scheduler.
    inference_factory: Callable[[Services], InferenceService] | None = None
    #: Sweep leftovers of interrupted writes on first use (off in replicas, which only read the store).
    recover_store: bool = True

    @cached_property
    def store(self) -> Store:
        store = Store(self.config.home, self.config.catalog)
        removed = store.recover() if self.recover_store else []
        if removed:
            log.info("removed %d leftover file(s) from an interrupted write", len(removed))
        return store

    @cached_property
    def models(self) -> Models:
        return Models(self.store)

    @cached_property
    def transfers(self) -> Transfers:
        """Pull and push for every kind of reference (CLI, ``/api/pull``/``/api/push``, the web catalog)."""
        return Transfers(self.store, self.models, self.config)

    @cached_property
    def datasets(self) -> Datasets:
        return Datasets(self.store, self.config.dataset_max_bytes)

    @cached_property
    def scheduler(self) -> Scheduler:
        from openzoo.runtime.llamacpp import LlamaCppBackend

        return Scheduler(LlamaCppBackend(), max_loaded=self.config.max_loaded_models,
                         num_parallel=self.config.num_parallel, max_queue=self.config.max_queue,
                         num_threads=self.config.num_threads, keep_alive=self.config.keep_alive,
                         guess_tokens=self.config.guess_tokens)

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics()

    @cached_property
    def inference(self) -> InferenceService:
        if self.inference_factory is not None:
            return self.inference_factory(self)
        return self.local_inference

    @cached_property
    def local_inference(self) -> Inference:
        """Inference on this process's own engine (what a replica serves)."""
        return Inference(self.models, self.scheduler, default_num_ctx=self.config.context_length,
                         metrics=self.metrics)

    def ensure_default_model(self) -> Iterator[Progress]:
        """Import the embedded default model when the store has no models at all (first start)."""
        if not self.models.list_models():
            yield from self.transfers.pull(DEFAULT_MODEL)

    def close(self) -> None:
        if "scheduler" in self.__dict__:
            self.scheduler.close()
        if "store" in self.__dict__:
            self.store.close()
