"""The domain services as audits and fine-tunes see them: a narrow, typed view of :class:`~openzoo.services.Services`.

:mod:`openzoo.audit` and :mod:`openzoo.finetune` run over the store, the models, the datasets and inference;
:class:`~openzoo.services.Services` builds them and holds their job registries. They take this protocol
rather than ``Services`` itself, so the services module can own them without an import circle.
"""

from __future__ import annotations

from typing import Protocol

from openzoo.config import Config
from openzoo.datasets.service import Datasets
from openzoo.inference import InferenceService
from openzoo.models import Models
from openzoo.store.store import Store

__all__ = ["Domain"]


class Domain(Protocol):
    """What one process's services offer to the packages above the domain (``Services`` satisfies it)."""

    @property
    def config(self) -> Config: ...

    @property
    def store(self) -> Store: ...

    @property
    def models(self) -> Models: ...

    @property
    def datasets(self) -> Datasets: ...

    @property
    def inference(self) -> InferenceService: ...
