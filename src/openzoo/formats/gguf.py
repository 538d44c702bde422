"""A bounded, hand-written structural check of GGUF files.

GGML's own reader has had heap overflows from counts and lengths taken from the file unchecked
(Talos 2024, CVE-2026-33298), so openzoo never hands a file to llama.cpp before this module has
walked its header: every count and length is checked against the bytes that remain *before* it is
used, nothing is allocated from a count, and the large tokenizer arrays are skipped by offset
arithmetic rather than decoded. The file is memory-mapped, so only the header pages are read
(a few milliseconds for a 250 MB model).

:func:`validate_gguf` returns a :class:`GGUFInfo` with what ``show``, ``tags`` and ``ps`` need.
"""

from __future__ import annotations

import mmap
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf as _gguf
import numpy as _np

from openzoo.errors import InvalidModelFile
from openzoo.formats.model_kind import is_instruction_tuned

__all__ = [
    "MAX_KV_COUNT",
    "MAX_TENSOR_COUNT",
    "GGUFArray",
    "GGUFInfo",
    "MetaValue",
    "Scalar",
    "TensorInfo",
    "check_adapter",
    "human_number",
    "model_config",
    "validate_gguf",
]

MAX_TENSOR_COUNT = 1_000_000
MAX_KV_COUNT = 100_000
MAX_DIMS = 4
MAX_KEY_LENGTH = 65_535
#: Arrays up to this many elements are always decoded; longer ones only on request.
SMALL_ARRAY = 64
#: Ollama empties arrays longer than this in ``/api/show`` unless ``verbose`` is set.
SHOW_ARRAY_LIMIT = 5
DEFAULT_ALIGNMENT = 32

Scalar = int | float | bool | str
MetaValue = Scalar | list[Scalar]

_MAGIC = b"GGUF"
_STRING = 8
_ARRAY = 9
_SCALAR_FORMATS: dict[int, struct.Struct] = {
    0: struct.Struct("<B"),
    1: struct.Struct("<b"),
    2: struct.Struct("<H"),
    3: struct.Struct("<h"),
    4: struct.Struct("<I"),
    5: struct.Struct("<i"),
    6: struct.Struct("<f"),
    7: struct.Struct("<B"),
    10: struct.Struct("<Q"),
    11: struct.Struct("<q"),
    12: struct.Struct("<d"),
}
_TYPE_NAMES = {t.value: t.name for t in _gguf.GGUFValueType}
_QUANT_SIZES: dict[int, tuple[int, int]] = {int(t): size for t, size in _gguf.GGML_QUANT_SIZES.items()}
_QUANT_NAMES: dict[int, str] = {int(t): t.name for t in _gguf.GGML_QUANT_SIZES}

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
# The smallest encodings, used to bound counts by the bytes left before looping over them.
_MIN_KV_BYTES = 8 + 4 + 1  # empty key, type, one-byte value
_MIN_TENSOR_BYTES = 8 + 4 + 8 + 4 + 8  # empty name, n_dims, one dim, type, offset


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's header entry, as listed by ``show --verbose``."""

    name: str
    shape: tuple[int, ...]
    type: str
    offset: int
    n_elements: int
    n_bytes: int


@dataclass(frozen=True)
class GGUFArray:
    """An array value; ``values`` is None when it was skipped (large and not requested)."""

    element_type: str
    count: int
    values: tuple[Scalar, ...] | None


@dataclass(frozen=True)
class GGUFInfo:
    """What openzoo knows about a GGUF file after a successful structural check."""

    path: Path
    file_size: int
    version: int
    alignment: int
    data_offset: int
    kv: Mapping[str, Scalar]
    arrays: Mapping[str, GGUFArray]
    tensors: tuple[TensorInfo, ...]
    arrays_loaded: bool = field(default=False, repr=False)

    @property
    def tensor_count(self) -> int:
        return len(self.tensors)

    @property
    def architecture(self) -> str:
        """``general.architecture``; llama.cpp itself assumes ``llama`` when it is missing."""
        value = self.kv.get("general.architecture")
        return value if isinstance(value, str) and value else "llama"

    @property
    def family(self) -> str:
        """Ollama reports the architecture as the model family."""
        return self.architecture

    @property
    def name(self) -> str | None:
        return self._str("general.name")

    @property
    def license(self) -> str | None:
        return self._str("general.license")

    @property
    def chat_template(self) -> str | None:
        return self._str("tokenizer.chat_template")

    @property
    def file_type(self) -> int | None:
        value = self.kv.get("general.file_type")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def context_length(self) -> int | None:
        return self._int(f"{self.architecture}.context_length")

    @property
    def embedding_length(self) -> int | None:
        return self._int(f"{self.architecture}.embedding_length")

    @property
    def parameter_count(self) -> int:
        """``general.parameter_count`` if written, else the sum of tensor element counts (as Ollama)."""
        declared = self._int("general.parameter_count")
        return declared if declared is not None else sum(t.n_elements for t in self.tensors)

    @property
    def parameter_size(self) -> str:
        """Ollama's display form of the parameter count, e.g. ``268.10M`` or ``7.6B``."""
        return human_number(self.parameter_count)

    @property
    def quantization(self) -> str:
        """The file type name (``Q4_K_M``), or the type holding most weight elements if unknown."""
        name = _file_type_name(self.file_type)
        if name is not None:
            return name
        totals: dict[str, int] = {}
        for tensor in self.tensors:
            if len(tensor.shape) >= 2:
                totals[tensor.type] = totals.get(tensor.type, 0) + tensor.n_elements
        if not totals:
            for tensor in self.tensors:
                totals[tensor.type] = totals.get(tensor.type, 0) + tensor.n_elements
        return max(totals, key=lambda k: totals[k]) if totals else "unknown"

    def metadata(self, verbose: bool = False) -> dict[str, MetaValue]:
        """The KV metadata in Ollama's ``model_info`` shape.

        Arrays longer than a few elements are emptied unless ``verbose`` (as Ollama does, so a
        262k-entry vocabulary is not sent on every ``show``); with ``verbose`` they are read from the
        file now. ``general.parameter_count`` is always present, computed if the file lacks it.
        """
        source = self
        if verbose and not self.arrays_loaded:
            source = validate_gguf(self.path, load_arrays=True)
        out: dict[str, MetaValue] = dict(source.kv)
        for key, array in source.arrays.items():
            if array.values is None or (not verbose and array.count > SHOW_ARRAY_LIMIT):
                out[key] = []
            else:
                out[key] = list(array.values)
        out.setdefault("general.parameter_count", self.parameter_count)
        return dict(sorted(out.items()))

    def _str(self, key: str) -> str | None:
        value = self.kv.get(key)
        return value if isinstance(value, str) else None

    def _int(self, key: str) -> int | None:
        value = self.kv.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def human_number(count: int) -> str:
    """Format a count as Ollama's ``format.HumanNumber`` does (``268.10M``, ``7.6B``, ``8B``)."""
    for scale, suffix, decimals in ((10**9, "B", 1), (10**6, "M", 2)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f}{suffix}" if value.is_integer() else f"{value:.{decimals}f}{suffix}"
    if count >= 1000:
        return f"{count / 1000:.0f}K"
    return str(count)


def _file_type_name(file_type: int | None) -> str | None:
    """llama.cpp's LLAMA_FTYPE name without its ``MOSTLY_``/``ALL_`` prefix, as Ollama shows it."""
    if file_type is None:
        return None
    try:
        member = _gguf.LlamaFileType(file_type)
    except ValueError:
        return None
    if member is _gguf.LlamaFileType.GUESSED:
        return None
    return member.name.removeprefix("MOSTLY_").removeprefix("ALL_")


class _Cursor:
    """Bounds-checked little-endian reads over the mapped file; every failure names the byte."""

    def __init__(self, data: mmap.mmap, size: int) -> None:
        self.data = data
        self.size = size
        self.pos = 0

    def fail(self, reason: str, at: int | None = None) -> InvalidModelFile:
        where = self.pos if at is None else at
        return InvalidModelFile(f"invalid GGUF file at byte {where}: {reason}")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"truncated: {what} needs {n} bytes, {self.size - self.pos} remain")

    def unpack(self, fmt: struct.Struct, what: str) -> int | float:
        self.need(fmt.size, what)
        (value,) = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return value  # type: ignore[no-any-return]

    def u32(self, what: str) -> int:
        return int(self.unpack(_U32, what))

    def u64(self, what: str) -> int:
        return int(self.unpack(_U64, what))

    def string(self, what: str, *, limit: int | None = None) -> bytes:
        start = self.pos
        length = self.u64(f"{what} length")
        if limit is not None and length > limit:
            raise self.fail(f"{what} length {length} exceeds {limit}", start)
        if length > self.size - self.pos:
            raise self.fail(f"{what} length {length} runs past the end of the file", start)
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw

    def skip_strings(self, count: int, what: str) -> None:
        """Walk ``count`` strings without decoding them (the 262k-token vocabulary case).

        The fast loop leans on ``unpack_from`` refusing offsets past the end; if anything is out of
        bounds, the checked loop runs again to say exactly where.
        """
        data, size, pos = self.data, self.size, self.pos
        unpack = _U64.unpack_from
        try:
            for _ in range(count):
                pos += 8 + unpack(data, pos)[0]
        except (struct.error, OverflowError):
            pos = size + 1
        if pos <= size:
            self.pos = pos
            return
        pos = self.pos
        for index in range(count):
            if pos + 8 > size:
                raise self.fail(f"truncated: {what}[{index}] length needs 8 bytes", pos)
            pos += 8 + unpack(data, pos)[0]
            if pos > size:
                raise self.fail(f"{what}[{index}] runs past the end of the file", pos)
        self.pos = pos


def _decode(raw: bytes, what: str, cursor: _Cursor, start: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise cursor.fail(f"{what} is not valid UTF-8", start) from exc


def _read_scalar(cursor: _Cursor, vtype: int, what: str) -> Scalar:
    if vtype == _STRING:
        # Values are not required to be valid UTF-8 by llama.cpp (some vocabularies hold raw bytes):
        # replace bad sequences rather than refuse a file the engine would load.
        return cursor.string(what).decode("utf-8", errors="replace")
    value = cursor.unpack(_SCALAR_FORMATS[vtype], what)
    if vtype == 7:
        return bool(value)
    if vtype == 6:
        # The shortest decimal that round-trips as float32: 1e-06, not 9.999999974752427e-07.
        return float(str(_np.float32(value)))
    return value


def _read_array(cursor: _Cursor, key: str, load: bool) -> GGUFArray:
    start = cursor.pos
    etype = cursor.u32(f"{key} element type")
    if etype == _ARRAY:
        raise cursor.fail(f"nested arrays are not supported ({key})", start)
    if etype != _STRING and etype not in _SCALAR_FORMATS:
        raise cursor.fail(f"unknown array element type {etype} for {key}", start)
    count = cursor.u64(f"{key} element count")
    min_size = 8 if etype == _STRING else _SCALAR_FORMATS[etype].size
    if count > (cursor.size - cursor.pos) // min_size:
        raise cursor.fail(f"array {key} claims {count} elements, more than the file can hold", start)
    values: tuple[Scalar, ...] | None = None
    if load or count <= SMALL_ARRAY:
        values = tuple(_read_scalar(cursor, etype, f"{key}[]") for _ in range(count))
    elif etype == _STRING:
        cursor.skip_strings(count, key)
    else:
        cursor.pos += count * min_size  # bounded by the check above
    return GGUFArray(element_type=_TYPE_NAMES.get(etype, str(etype)), count=count, values=values)


def _read_kvs(cursor: _Cursor, kv_count: int, load_arrays: bool) -> tuple[dict[str, Scalar], dict[str, GGUFArray]]:
    kv: dict[str, Scalar] = {}
    arrays: dict[str, GGUFArray] = {}
    for index in range(kv_count):
        start = cursor.pos
        key = _decode(cursor.string(f"key {index}", limit=MAX_KEY_LENGTH), f"key {index}", cursor, start)
        if not key:
            raise cursor.fail(f"key {index} is empty", start)
        if key in kv or key in arrays:
            raise cursor.fail(f"duplicate key {key!r}", start)
        type_at = cursor.pos
        vtype = cursor.u32(f"type of {key}")
        if vtype == _ARRAY:
            arrays[key] = _read_array(cursor, key, load_arrays)
        elif vtype == _STRING or vtype in _SCALAR_FORMATS:
            kv[key] = _read_scalar(cursor, vtype, key)
        else:
            raise cursor.fail(f"unknown value type {vtype} for {key}", type_at)
    return kv, arrays


def _read_tensor_infos(cursor: _Cursor, tensor_count: int) -> list[tuple[str, tuple[int, ...], int, int, int]]:
    infos: list[tuple[str, tuple[int, ...], int, int, int]] = []
    seen: set[str] = set()
    for index in range(tensor_count):
        start = cursor.pos
        name = _decode(cursor.string(f"tensor {index} name", limit=MAX_KEY_LENGTH), "tensor name", cursor, start)
        if name in seen:
            raise cursor.fail(f"duplicate tensor name {name!r}", start)
        seen.add(name)
        dims_at = cursor.pos
        n_dims = cursor.u32(f"tensor {name} n_dims")
        if not 1 <= n_dims <= MAX_DIMS:
            raise cursor.fail(f"tensor {name} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)", dims_at)
        shape = tuple(cursor.u64(f"tensor {name} dimension") for _ in range(n_dims))
        if any(d == 0 for d in shape):
            raise cursor.fail(f"tensor {name} has a zero dimension {list(shape)}", dims_at)
        type_at = cursor.pos
        ggml_type = cursor.u32(f"tensor {name} type")
        if ggml_type not in _QUANT_SIZES:
            raise cursor.fail(f"tensor {name} has unknown ggml type {ggml_type}", type_at)
        infos.append((name, shape, ggml_type, cursor.u64(f"tensor {name} offset"), start))
    return infos


def _place_tensors(
    cursor: _Cursor,
    infos: list[tuple[str, tuple[int, ...], int, int, int]],
    data_offset: int,
    alignment: int,
) -> tuple[TensorInfo, ...]:
    """Check each tensor's data is aligned, inside the file and not overlapping another."""
    tensors: list[TensorInfo] = []
    for name, shape, ggml_type, offset, at in infos:
        block, type_size = _QUANT_SIZES[ggml_type]
        n_elements = 1
        for dim in shape:
            n_elements *= dim
        if shape[0] % block:
            raise cursor.fail(f"tensor {name} row length {shape[0]} is not a multiple of block {block}", at)
        n_bytes = n_elements // block * type_size
        if offset % alignment:
            raise cursor.fail(f"tensor {name} offset {offset} is not aligned to {alignment}", at)
        if data_offset + offset + n_bytes > cursor.size:
            raise cursor.fail(
                f"tensor {name} data [{data_offset + offset}, {data_offset + offset + n_bytes}) "
                f"lies outside the file of {cursor.size} bytes",
                at,
            )
        tensors.append(TensorInfo(name, shape, _QUANT_NAMES[ggml_type], offset, n_elements, n_bytes))
    previous: TensorInfo | None = None
    for tensor in sorted(tensors, key=lambda t: t.offset):
        if previous is not None and previous.offset + previous.n_bytes > tensor.offset:
            raise cursor.fail(f"tensor {tensor.name} overlaps tensor {previous.name}", data_offset + tensor.offset)
        previous = tensor
    return tuple(tensors)


def validate_gguf(path: str | Path, *, load_arrays: bool = False) -> GGUFInfo:
    """Walk a GGUF file's header and return what it describes, or raise :class:`InvalidModelFile`.

    ``load_arrays`` decodes every array value (the tokenizer vocabulary included); without it
    large arrays are only bounds-checked, which keeps this fast enough to call on every import.
    """
    file = Path(path)
    try:
        if not stat.S_ISREG(file.stat().st_mode):  # a FIFO or device would block or never end
            raise InvalidModelFile(f"GGUF file {file.name} is not a regular file")
        handle = file.open("rb")
    except OSError as exc:
        raise InvalidModelFile(f"cannot open GGUF file {file.name}: {exc.strerror}") from exc
    with handle:
        size = file.stat().st_size
        if size < 4 + 4 + 8 + 8:
            raise InvalidModelFile(f"invalid GGUF file at byte {size}: truncated header ({size} bytes)")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse(file, data, size, load_arrays)


def _parse(file: Path, data: mmap.mmap, size: int, load_arrays: bool) -> GGUFInfo:
    cursor = _Cursor(data, size)
    if data[:4] != _MAGIC:
        raise cursor.fail(f"not a GGUF file (magic {bytes(data[:4])!r})")
    cursor.pos = 4
    version = cursor.u32("version")
    if version not in (2, 3):
        raise cursor.fail(f"unsupported GGUF version {version} (2 or 3 expected)", 4)
    tensor_count = cursor.u64("tensor count")
    kv_count = cursor.u64("KV count")
    if tensor_count > MAX_TENSOR_COUNT or tensor_count * _MIN_TENSOR_BYTES > size - cursor.pos:
        raise cursor.fail(f"absurd tensor count {tensor_count}", 8)
    if kv_count > MAX_KV_COUNT or kv_count * _MIN_KV_BYTES > size - cursor.pos:
        raise cursor.fail(f"absurd KV count {kv_count}", 16)
    kv, arrays = _read_kvs(cursor, kv_count, load_arrays)
    alignment_value = kv.get("general.alignment", DEFAULT_ALIGNMENT)
    if (
        not isinstance(alignment_value, int)
        or isinstance(alignment_value, bool)
        or alignment_value <= 0
        or alignment_value & (alignment_value - 1)
    ):
        raise cursor.fail(f"general.alignment {alignment_value!r} is not a power of two")
    alignment = alignment_value
    infos = _read_tensor_infos(cursor, tensor_count)
    data_offset = -(-cursor.pos // alignment) * alignment
    if infos and data_offset > size:
        raise cursor.fail("tensor data section starts past the end of the file")
    tensors = _place_tensors(cursor, infos, data_offset, alignment)
    return GGUFInfo(
        path=file,
        file_size=size,
        version=version,
        alignment=alignment,
        data_offset=data_offset,
        kv=kv,
        arrays=arrays,
        tensors=tensors,
        arrays_loaded=load_arrays,
    )


def check_adapter(adapter: GGUFInfo, base: GGUFInfo) -> None:
    """Refuse an adapter that llama.cpp could not apply to ``base``: wrong type, architecture or shapes."""
    kind = adapter.kv.get("general.type")
    if kind != "adapter" or adapter.kv.get("adapter.type") != "lora":
        raise InvalidModelFile(f"{adapter.path.name} is not a LoRA adapter GGUF (general.type={kind!r})",
                               hint="convert the adapter with llama.cpp's convert_lora_to_gguf.py")
    if adapter.architecture != base.architecture:
        raise InvalidModelFile(f"adapter architecture {adapter.architecture!r} does not match the base model's "
                               f"{base.architecture!r}", hint="use an adapter trained on this base model")
    shapes = {t.name: t.shape for t in base.tensors}
    for tensor in adapter.tensors:
        target, _, which = tensor.name.rpartition(".lora_")
        if target not in shapes:
            raise InvalidModelFile(f"adapter tensor {tensor.name} has no matching base tensor {target}",
                                   hint="use an adapter trained on this base model")
        # GGUF shapes list the fastest dimension first: a weight [out, in] appears as (in, out).
        base_in, base_out = shapes[target][0], shapes[target][-1]
        if (which == "a" and tensor.shape[0] != base_in) or (which == "b" and tensor.shape[-1] != base_out):
            raise InvalidModelFile(f"adapter tensor {tensor.name} has shape {tensor.shape}, which does not fit "
                                   f"base tensor {target} {shapes[target]}",
                                   hint="use an adapter trained on this base model")


def model_config(info: GGUFInfo, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config JSON a stored model carries (Ollama's ConfigV2 fields plus what ``show`` needs), read from
    its GGUF; ``extra`` adds or overrides keys."""
    config: dict[str, Any] = {
        "model_format": "gguf",
        "model_family": info.family,
        "model_families": [info.family],
        "model_type": info.parameter_size,
        "file_type": info.quantization,
        "architecture": info.architecture,
        "parameter_count": info.parameter_count,
        "context_length": info.context_length,
        "embedding_length": info.embedding_length,
        "has_chat_template": info.chat_template is not None,
        "instruction_tuned": is_instruction_tuned(info.metadata(), has_chat_template=info.chat_template is not None),
        "capabilities": ["completion", "embedding"] + (["insert"] if _has_fim(info) else []),
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    if extra:
        config.update(extra)
    return config


def _has_fim(info: GGUFInfo) -> bool:
    meta = info.metadata()
    return any(key in meta for key in ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"))
