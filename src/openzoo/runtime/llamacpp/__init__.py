"""llama.cpp inference engine with continuous batching.

``LlamaCppBackend().load(path, LoadOptions(...))`` returns a :class:`LlamaCppModel`, which runs up to
``n_parallel`` requests at once in one decode loop. See ``engine.py`` for how a step works, which
module holds each part of it, and which llama.cpp settings keep greedy output independent of the batch.
"""

from openzoo.runtime.llamacpp.backend import LlamaCppBackend
from openzoo.runtime.llamacpp.engine import LlamaCppModel
from openzoo.runtime.llamacpp.jobs import LlamaCppHandle
from openzoo.runtime.llamacpp.stops import StopMatcher, Utf8Assembler

__all__ = ["LlamaCppBackend", "LlamaCppHandle", "LlamaCppModel", "StopMatcher", "Utf8Assembler"]
