"""The llama.cpp backend: turns a GGUF path and load options into a running engine."""

from __future__ import annotations

from pathlib import Path

from openzoo.errors import NotFound
from openzoo.runtime.base import LoadOptions
from openzoo.runtime.llamacpp.engine import LlamaCppModel
from openzoo.runtime.llamacpp.step import DEFAULT_PREFILL_CHUNK

__all__ = ["LlamaCppBackend"]


class LlamaCppBackend:
    """``Backend`` for GGUF models through llama-cpp-python's low-level bindings.

    ``prefill_chunk`` is how many prompt tokens a sequence reads per decode step: smaller keeps
    running streams smoother while a long prompt joins, larger reads prompts faster. ``extra_bufts`` lets
    llama.cpp repack weights into its extra CPU buffer types (``OPENZOO_LLAMA_EXTRA_BUFTS``).
    """

    name = "llama.cpp"

    def __init__(self, *, prefill_chunk: int = DEFAULT_PREFILL_CHUNK, extra_bufts: bool = False) -> None:
        self._prefill_chunk = prefill_chunk
        self._extra_bufts = extra_bufts

    def load(self, path: Path, options: LoadOptions) -> LlamaCppModel:
        """Load the model and start its decode thread."""
        if not Path(path).is_file():
            raise NotFound(f"model file {path} does not exist")
        return LlamaCppModel(Path(path), options, prefill_chunk=self._prefill_chunk, extra_bufts=self._extra_bufts)
