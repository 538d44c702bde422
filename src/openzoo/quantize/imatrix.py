"""Importance matrices: how large each weight matrix's inputs are, from running the model on text.

llama.cpp's very-low-bit types (IQ1/IQ2, Q2_K_S) spend their bits where the activations are large, so
they need, for every weight matrix, the mean square of each input column over some calibration text: what
llama.cpp's ``llama-imatrix`` tool computes (``in_sum2 / counts`` of its GGUF format) and
``llama_model_quantize`` takes as a NULL-terminated ``llama_model_imatrix_data`` array.

Computed here through llama-cpp-python's bindings: the context's ``cb_eval`` callback asks the graph
scheduler to stop after every matrix product whose first operand is a layer weight (``blk.*``), reads
the second operand (the F32 activations) with ``ggml_backend_tensor_get`` and accumulates the squares
per column in float64, as ``llama-imatrix`` does (it also skips products of fewer than 16 rows). Every
token asks for logits, as in ``llama-imatrix``: otherwise llama.cpp computes the last layer's feed-forward
for the last token only, and its matrices get no entry (llama.cpp then refuses the IQ2 types). The
``ggml_tensor`` layout is declared below and checked against ggml at run time (``ggml_get_name`` must
point at the declared ``name`` field), so a different ggml fails loudly instead of reading garbage.
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from openzoo.errors import EngineError, NotSupported
from openzoo.quantize.measure import HeldOut, ScoringModel
from openzoo.runtime.llamacpp.native import L, batch_put, free_native

__all__ = ["CALIBRATION_CONTEXT", "CALIBRATION_TOKENS", "ImportanceMatrix", "compute"]

CALIBRATION_TOKENS = 2048
CALIBRATION_CONTEXT = 512
_MIN_ROWS = 16  # llama-imatrix ignores smaller products (single-token decodes)


class _Tensor(ctypes.Structure):
    """``struct ggml_tensor`` (ggml.h, GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10, GGML_MAX_NAME 64)."""

    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
                ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8)]


def _ggml() -> ctypes.CDLL:
    import llama_cpp

    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    lib.ggml_op_desc.argtypes, lib.ggml_op_desc.restype = [ctypes.c_void_p], ctypes.c_char_p
    lib.ggml_get_name.argtypes, lib.ggml_get_name.restype = [ctypes.c_void_p], ctypes.c_void_p
    lib.ggml_is_contiguous.argtypes, lib.ggml_is_contiguous.restype = [ctypes.c_void_p], ctypes.c_bool
    lib.ggml_nbytes.argtypes, lib.ggml_nbytes.restype = [ctypes.c_void_p], ctypes.c_size_t
    lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    lib.ggml_backend_tensor_get.restype = None
    return lib


@dataclass(slots=True)
class ImportanceMatrix:
    """Per weight matrix: the mean square of each input column over the calibration tokens."""

    source: str
    digest: str
    tokens: int
    context: int
    values: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What the lineage records: the calibration text, its size, and a digest of the matrix itself."""
        h = hashlib.sha256()
        for name in sorted(self.values):
            h.update(name.encode() + b"\0" + self.values[name].tobytes())
        return {"source": self.source, "digest": self.digest, "tokens": self.tokens, "context": self.context,
                "tensors": len(self.values), "matrix_digest": "sha256:" + h.hexdigest()}

    def as_params(self) -> Any:
        """The NULL-terminated ``llama_model_imatrix_data`` array (it refers to this object's arrays: keep both)."""
        entries = (L.llama_model_imatrix_data * (len(self.values) + 1))()
        for i, (name, values) in enumerate(sorted(self.values.items())):
            entries[i].name = name.encode()
            entries[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entries[i].size = values.size
        return ctypes.cast(entries, ctypes.POINTER(L.llama_model_imatrix_data)), entries


class _Collector:
    """The ``cb_eval`` callback and its sums (float64 per column, rows counted per matrix)."""

    def __init__(self) -> None:
        self.lib = _ggml()
        self.sums: dict[str, npt.NDArray[np.float64]] = {}
        self.counts: dict[str, int] = {}
        self.error: BaseException | None = None
        self.checked = False
        self.callback = L.ggml_backend_sched_eval_callback(self._on_node)

    def _weight(self, t: _Tensor) -> tuple[str, _Tensor, int] | None:
        src0, src1 = t.src[0], t.src[1]
        if not src0 or not src1:
            return None
        a, b = _Tensor.from_address(src0), _Tensor.from_address(src1)
        name = a.name.decode("utf-8", "replace")
        if "#" in name:  # the scheduler's copies: "<backend>#<name>#<n>"
            name = name.split("#")[1]
        if not name.startswith("blk.") or b.type != L.GGML_TYPE_F32 or b.ne[1] < _MIN_ROWS or a.ne[2] * a.ne[3] != 1:
            return None
        return name, b, src1

    def _on_node(self, ptr: int, ask: bool, _user: Any) -> bool:
        try:
            if not self.checked:
                got = self.lib.ggml_get_name(ptr)
                if got != ptr + _Tensor.name.offset:
                    raise NotSupported("this llama.cpp's ggml_tensor layout is not the one openzoo reads",
                                       hint="quantize to a type that needs no importance matrix")
                self.checked = True
            if self.lib.ggml_op_desc(ptr) != b"MUL_MAT":
                return not ask
            found = self._weight(_Tensor.from_address(ptr))
            if ask:
                return found is not None
            if found is None:
                return True
            name, b, b_ptr = found
            if not self.lib.ggml_is_contiguous(b_ptr):
                return True
            cols = int(b.ne[0])
            buf = np.empty(int(self.lib.ggml_nbytes(b_ptr)) // 4, dtype=np.float32)
            self.lib.ggml_backend_tensor_get(b_ptr, buf.ctypes.data, 0, buf.nbytes)
            x = buf.reshape(-1, cols).astype(np.float64)
            if name not in self.sums:
                self.sums[name] = np.zeros(cols, dtype=np.float64)
                self.counts[name] = 0
            self.sums[name] += (x * x).sum(axis=0)
            self.counts[name] += x.shape[0]
            return True
        except BaseException as exc:  # stop the graph; compute() raises it
            self.error = exc
            return False


def compute(path: Path, text: HeldOut, *, tokens: int = CALIBRATION_TOKENS, context: int = CALIBRATION_CONTEXT,
            n_threads: int = 0) -> ImportanceMatrix:
    """The importance matrix of the GGUF at ``path`` over the first ``tokens`` tokens of ``text``."""
    collector = _Collector()
    with ScoringModel(path, n_ctx=context, n_threads=n_threads) as model:
        ids = model.tokenize(text.text)[:tokens]
        cp = L.llama_context_default_params()
        cp.n_ctx = cp.n_batch = cp.n_ubatch = context
        cp.n_threads = cp.n_threads_batch = model.scorer._n_threads
        cp.cb_eval = collector.callback
        cp.no_perf = True
        ctx = L.llama_init_from_model(model.model, cp)
        if not ctx:
            raise EngineError("could not create the importance-matrix context")
        batch = L.llama_batch_init(context, 0, 1)
        try:
            used = 0
            for start in range(0, len(ids), context - 1):
                chunk = [model.bos, *ids[start : start + context - 1]]
                L.llama_memory_clear(L.llama_get_memory(ctx), True)
                for j, token in enumerate(chunk):
                    batch_put(batch, j, token, j, 0, True)
                batch.n_tokens = len(chunk)
                rc = L.llama_decode(ctx, batch)
                if collector.error is not None:
                    raise collector.error
                if rc != 0:
                    raise EngineError(f"computing the importance matrix failed (llama_decode returned {rc})")
                used += len(chunk) - 1
        finally:
            free_native(batch, ctx)
    if not collector.sums:
        raise NotSupported(f"no layer weights were seen while reading {text.source}",
                           hint="give more calibration text (at least 16 tokens)")
    values = {name: (collector.sums[name] / max(1, collector.counts[name])).astype(np.float32)
              for name in collector.sums}
    return ImportanceMatrix(text.source, text.digest, used, context, values)
