"""Wiring: the domain services of one openzoo process, built once from a :class:`Config`.

The HTTP app and the in-process CLI both start here, so they share one store, one scheduler and one
engine per model, never two implementations. ``openzoo serve --replicas`` passes an
``inference_factory`` that hands inference to Ray Serve replicas (``scale/``); each replica builds
its own ``Services`` (without store recovery: the front owns the store's writes) around the same home.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from openzoo.certify.service import Certification
from openzoo.config import Config
from openzoo.datasets.service import Datasets
from openzoo.events import Progress
from openzoo.inference import Inference, InferenceService
from openzoo.metrics import Metrics
from openzoo.models import DEFAULT_MODEL, Models
from openzoo.runtime.scheduler import Scheduler
from openzoo.schema import open_store
from openzoo.store.store import Store
from openzoo.transfers import Transfers

if TYPE_CHECKING:
    from openzoo.audit.jobs import AuditJobs
    from openzoo.finetune.jobs import Jobs as FinetuneJobs
    from openzoo.store.responses import StoredResponses

log = logging.getLogger("openzoo")


@dataclass
class Services:
    config: Config
    #: How inference runs; None runs it on this process's scheduler.
    inference_factory: Callable[[Services], InferenceService] | None = None
    #: Sweep leftovers of interrupted writes on first use (off in replicas, which only read the store).
    recover_store: bool = True
    #: Held while a job registry opens, so two first requests at once open one.
    _opening: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @cached_property
    def store(self) -> Store:
        store = open_store(self.config.home, self.config.catalog)
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
        return Transfers(self.store, self.models, self.config, self.certification)

    @cached_property
    def certification(self) -> Certification:
        """Keys, log, policy, evidence, seals and verification of this store (one per process: it keeps the
        log's frontier)."""
        return Certification(self.store, passphrase=self.config.key_passphrase,
                             zoo_passphrase=self.config.zoo_key_passphrase)

    @cached_property
    def datasets(self) -> Datasets:
        return Datasets(self.store, self.config.dataset_max_bytes)

    @cached_property
    def scheduler(self) -> Scheduler:
        from openzoo.runtime.llamacpp import LlamaCppBackend

        return Scheduler(LlamaCppBackend(extra_bufts=self.config.llama_extra_bufts),
                         max_loaded=self.config.max_loaded_models,
                         num_parallel=self.config.num_parallel, max_queue=self.config.max_queue,
                         num_threads=self.config.num_threads, keep_alive=self.config.keep_alive,
                         guess_tokens=self.config.guess_tokens, batch_invariant=self.config.batch_invariant,
                         prompt_cache_bytes=self.config.prompt_cache_bytes)

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

    @cached_property
    def responses(self) -> StoredResponses:
        """Responses of ``/v1/responses`` kept for ``previous_response_id`` (in the catalog)."""
        from openzoo.store.responses import StoredResponses

        catalog = self.store.catalog
        return StoredResponses(catalog.connection, catalog.transaction, self.config.responses_keep)

    @cached_property
    def audit_jobs(self) -> AuditJobs:
        """The audits this process runs in the background (opened on first use: it reads the catalog and marks
        the jobs of a server that died as interrupted)."""
        from openzoo.audit.jobs import AuditJobs
        from openzoo.audit.service import job_runner

        with self._opening:
            return AuditJobs(self.store.catalog, job_runner(self))

    @cached_property
    def finetune_jobs(self) -> FinetuneJobs:
        """The fine-tunes this process runs in the background (the finished ones are read from the catalog)."""
        from openzoo.finetune.jobs import Jobs

        with self._opening:
            return Jobs(self.store.catalog.connection, self.store.catalog.transaction)

    def started_inference(self) -> InferenceService | None:
        """The inference service when something has already built it; None otherwise (never starts it)."""
        found: InferenceService | None = self.__dict__.get("inference")
        return found

    def ensure_default_model(self) -> Iterator[Progress]:
        """Import the embedded default model when the store has no models at all (first start)."""
        if not self.models.list_models():
            yield from self.transfers.pull(DEFAULT_MODEL)

    def close(self) -> None:
        if "scheduler" in self.__dict__:
            self.scheduler.close()
        if "store" in self.__dict__:
            self.store.close()
