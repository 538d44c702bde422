"""Wiring: the domain services of one openzoo process, built once from a :class:`Config`.

The HTTP app and the in-process CLI both start here, so they share one store, one scheduler and one
engine per model, never two implementations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from openzoo.config import Config
from openzoo.datasets.service import Datasets
from openzoo.events import Progress
from openzoo.inference import Inference
from openzoo.metrics import Metrics
from openzoo.models import DEFAULT_MODEL, Models
from openzoo.runtime.scheduler import Scheduler
from openzoo.store.store import Store

log = logging.getLogger("openzoo")


@dataclass
class Services:
    config: Config

    @cached_property
    def store(self) -> Store:
        store = Store(self.config.home)
        removed = store.recover()
        if removed:
            log.info("removed %d leftover file(s) from an interrupted write", len(removed))
        return store

    @cached_property
    def models(self) -> Models:
        return Models(self.store)

    @cached_property
    def datasets(self) -> Datasets:
        return Datasets(self.store, self.config.dataset_max_bytes)

    @cached_property
    def scheduler(self) -> Scheduler:
        from openzoo.runtime.llamacpp import LlamaCppBackend

        return Scheduler(LlamaCppBackend(), max_loaded=self.config.max_loaded_models,
                         num_parallel=self.config.num_parallel, max_queue=self.config.max_queue,
                         num_threads=self.config.num_threads, keep_alive=self.config.keep_alive)

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics()

    @cached_property
    def inference(self) -> Inference:
        return Inference(self.models, self.scheduler, default_num_ctx=self.config.context_length,
                         metrics=self.metrics)

    def ensure_default_model(self) -> Iterator[Progress]:
        """Import the embedded default model when the store has no models at all (first start)."""
        if not self.models.list_models():
            yield from self.models.pull(DEFAULT_MODEL)

    def close(self) -> None:
        if "scheduler" in self.__dict__:
            self.scheduler.close()
        if "store" in self.__dict__:
            self.store.close()
