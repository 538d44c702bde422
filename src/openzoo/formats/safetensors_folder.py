"""A Hugging Face-style model folder (``config.json`` + ``*.safetensors`` + tokenizer files), checked up front.

``openzoo import DIR`` must refuse a bad folder before anything is stored, so :func:`inspect_folder`
reads every fact the import and the GGUF conversion need and raises on the first problem:

* ``config.json`` present, a JSON object, naming one architecture openzoo can convert
  (:data:`ARCHITECTURES`; others get :class:`~openzoo.errors.NotSupported` naming the architecture);
* every weights file passes :func:`openzoo.formats.scan.scan_safetensors` (the same header check
  ``openzoo certify`` runs: bounds, overlaps, dtype sizes), so there is one safetensors checker;
* a sharded folder's ``model.safetensors.index.json`` agrees with the shards it names;
* every tensor the configuration implies is there, with the shape the configuration implies and a
  float dtype (F32, F16 or BF16), and no tensor is left over that the conversion would drop;
* the tokenizer is a ``tokenizer.json`` of the SentencePiece-BPE kind (byte fallback), the form the
  GGUF ``llama`` tokenizer reproduces.

Tensor data is read lazily (:meth:`TensorRef.array` memory-maps the file), so a multi-GB folder is
never held in memory.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openzoo.errors import InvalidModelFile, NotFound, NotSupported

__all__ = ["ARCHITECTURES", "FILENAME_ANNOTATION", "FILES", "HF_FILE", "SAFETENSORS_WEIGHTS", "ArchSpec",
           "HFFolder", "TensorRef", "expected_shapes", "inspect_folder"]

#: Layer media types for a folder imported as it is (named like the store's own openzoo types), so that
#: ``openzoo finetune`` can load the original weights into transformers instead of dequantizing a GGUF.
SAFETENSORS_WEIGHTS = "application/vnd.openzoo.weights.v1+safetensors"
HF_FILE = "application/vnd.openzoo.hf-file.v1"
#: The file name a layer had in the folder (shards and tokenizer files need their names back).
FILENAME_ANNOTATION = "org.openzoo.filename"

#: Small files kept beside the weights (configuration, tokenizer, generation defaults, chat template).
FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
         "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "chat_template.json",
         "model.safetensors.index.json")
INDEX = "model.safetensors.index.json"

_DTYPES: dict[str, np.dtype[Any]] = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}
# Buffers some checkpoints carry that the model recomputes; the conversion has no use for them.
_IGNORED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")


@dataclass(frozen=True, slots=True)
class ArchSpec:
    """How one transformers architecture becomes a GGUF one."""

    gguf_arch: str
    #: Extra per-layer tensors besides the attention and MLP projections and the two norms.
    layer_vectors: tuple[tuple[str, str], ...] = ()
    tie_default: bool = False


ARCHITECTURES: dict[str, ArchSpec] = {
    "Gemma3ForCausalLM": ArchSpec("gemma3", (("self_attn.q_norm", "head_dim"), ("self_attn.k_norm", "head_dim"),
                                             ("pre_feedforward_layernorm", "hidden"),
                                             ("post_feedforward_layernorm", "hidden")), tie_default=True),
    "LlamaForCausalLM": ArchSpec("llama"),
}


@dataclass(frozen=True, slots=True)
class TensorRef:
    """Where one tensor's bytes are: file, dtype (safetensors' name), shape and absolute byte offset."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int

    def array(self) -> np.ndarray[Any, Any]:
        """The tensor, memory-mapped read-only (BF16 as its raw ``uint16`` bits; numpy has no bfloat16)."""
        if math.prod(self.shape) == 0:
            return np.zeros(self.shape, _DTYPES[self.dtype])
        return np.memmap(self.file, dtype=_DTYPES[self.dtype], mode="r", offset=self.offset, shape=self.shape)


@dataclass(frozen=True, slots=True)
class HFFolder:
    """A validated folder: its configuration, architecture, weights files, tensors and small files."""

    path: Path
    config: dict[str, Any]
    architecture: str
    spec: ArchSpec
    weights: tuple[Path, ...]
    files: tuple[Path, ...]
    tensors: dict[str, TensorRef] = field(repr=False)
    tokenizer: dict[str, Any] = field(repr=False)

    @property
    def tied(self) -> bool:
        return bool(self.config.get("tie_word_embeddings", self.spec.tie_default))

    def hparam(self, key: str) -> int:
        """An integer hyperparameter of ``config.json``, required."""
        return _int(self.config, key)

    @property
    def head_dim(self) -> int:
        value = self.config.get("head_dim")
        if isinstance(value, int):
            return value
        return self.hparam("hidden_size") // self.hparam("num_attention_heads")


def _int(config: dict[str, Any], key: str) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidModelFile(f"config.json: {key} must be a positive integer (got {value!r})",
                               hint="use the config.json the model was saved with")
    return value


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidModelFile(f"{path.name} is not valid JSON: {exc}", hint="check the file") from exc


def _architecture(config: dict[str, Any]) -> tuple[str, ArchSpec]:
    archs = config.get("architectures")
    if not isinstance(archs, list) or len(archs) != 1 or not isinstance(archs[0], str):
        raise InvalidModelFile("config.json must name exactly one architecture in \"architectures\"",
                               hint="save the model with transformers' save_pretrained")
    arch = archs[0]
    if arch not in ARCHITECTURES:
        raise NotSupported(f"architecture {arch} cannot be imported yet (supported: {', '.join(ARCHITECTURES)})",
                           hint="convert the model to GGUF with llama.cpp's convert_hf_to_gguf.py and import that")
    return arch, ARCHITECTURES[arch]


def _headers(path: Path) -> dict[str, TensorRef]:
    """Scan one weights file with the certify scanner, then read its tensor table."""
    from openzoo.formats.scan import scan_safetensors

    critical = [f.message for f in scan_safetensors(path) if f.severity in ("critical", "high")]
    if critical:
        raise InvalidModelFile(f"{path.name} is not a valid safetensors file: {critical[0]}",
                               hint="copy the file again; it may be truncated or damaged")
    with path.open("rb") as handle:
        header_len = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(header_len))
    refs: dict[str, TensorRef] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise InvalidModelFile(f"{path.name}: tensor {name} has dtype {info['dtype']}; only F32, F16 and BF16 "
                                   "weights can be imported", hint="save the model unquantized")
        start = 8 + header_len + info["data_offsets"][0]
        refs[name] = TensorRef(name, path, info["dtype"], tuple(info["shape"]), start)
    return refs


def _weights(folder: Path) -> tuple[tuple[Path, ...], dict[str, TensorRef]]:
    index = folder / INDEX
    if index.is_file():
        raw = _read_json(index)
        weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise InvalidModelFile(f"{INDEX} has no weight_map", hint="use the index save_pretrained wrote")
        names = sorted({str(v) for v in weight_map.values()})
        for name in names:
            if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(".safetensors"):
                raise InvalidModelFile(f"{INDEX} names an invalid shard {name!r}")
            if not (folder / name).is_file():
                raise InvalidModelFile(f"shard {name} named in {INDEX} is missing", hint="copy every shard")
        files = tuple(folder / name for name in names)
    else:
        files = tuple(sorted(folder.glob("*.safetensors")))
        weight_map = None
    if not files:
        raise InvalidModelFile(f"no *.safetensors weights in {folder}",
                               hint="save the model with save_pretrained(safe_serialization=True)")
    tensors: dict[str, TensorRef] = {}
    for path in files:
        for name, ref in _headers(path).items():
            if name in tensors:
                raise InvalidModelFile(f"tensor {name} is in both {tensors[name].file.name} and {path.name}")
            tensors[name] = ref
    if weight_map is not None:
        for name, shard in weight_map.items():
            if name not in tensors or tensors[name].file.name != shard:
                raise InvalidModelFile(f"{INDEX} puts tensor {name} in {shard}, but it is not there",
                                       hint="copy the shards and index of one save")
    return files, {k: v for k, v in tensors.items() if not _IGNORED.search(k)}


def expected_shapes(config: dict[str, Any], spec: ArchSpec, head_dim: int) -> dict[str, tuple[int, ...]]:
    """Every tensor name the configuration implies, with its shape (transformers' ``[out, in]``)."""
    hidden, heads = _int(config, "hidden_size"), _int(config, "num_attention_heads")
    kv = int(config.get("num_key_value_heads") or heads)
    inter, vocab, layers = _int(config, "intermediate_size"), _int(config, "vocab_size"), _int(config,
                                                                                               "num_hidden_layers")
    sizes = {"hidden": hidden, "head_dim": head_dim}
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,)}
    if not config.get("tie_word_embeddings", spec.tie_default):
        shapes["lm_head.weight"] = (vocab, hidden)
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "self_attn.q_proj.weight": (heads * head_dim, hidden),
            p + "self_attn.k_proj.weight": (kv * head_dim, hidden),
            p + "self_attn.v_proj.weight": (kv * head_dim, hidden),
            p + "self_attn.o_proj.weight": (hidden, heads * head_dim),
            p + "mlp.gate_proj.weight": (inter, hidden),
            p + "mlp.up_proj.weight": (inter, hidden),
            p + "mlp.down_proj.weight": (hidden, inter),
            p + "input_layernorm.weight": (hidden,),
            p + "post_attention_layernorm.weight": (hidden,),
        })
        for name, size in spec.layer_vectors:
            shapes[p + name + ".weight"] = (sizes[size],)
    return shapes


def _tokenizer(folder: Path) -> dict[str, Any]:
    path = folder / "tokenizer.json"
    if not path.is_file():
        if (folder / "tokenizer.model").is_file():
            raise NotSupported("only a tokenizer.json (Hugging Face tokenizers) can be converted; this folder has "
                               "tokenizer.model alone", hint="save the tokenizer with a fast tokenizer too")
        raise InvalidModelFile(f"no tokenizer.json in {folder}", hint="save the tokenizer beside the model")
    raw = _read_json(path)
    model = raw.get("model") if isinstance(raw, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("vocab"), dict):
        raise InvalidModelFile("tokenizer.json has no model vocabulary")
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        raise NotSupported(f"tokenizer.json of type {model.get('type')} without SentencePiece byte fallback cannot "
                           "be converted yet (byte-level BPE and Unigram tokenizers are not supported)",
                           hint="convert the model with llama.cpp's convert_hf_to_gguf.py and import the GGUF")
    return dict(raw)


def inspect_folder(path: Path) -> HFFolder:
    """Validate a folder completely (no side effects) and describe it; raise on the first problem."""
    if not path.is_dir():
        raise NotFound(f"no such folder: {path}", hint="give the folder save_pretrained wrote")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise InvalidModelFile(f"{path} has no config.json", hint="a Hugging Face model folder needs config.json")
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise InvalidModelFile("config.json is not a JSON object")
    arch, spec = _architecture(config)
    head_dim = config.get("head_dim")
    if not isinstance(head_dim, int):
        head_dim = _int(config, "hidden_size") // _int(config, "num_attention_heads")
    shapes = expected_shapes(config, spec, head_dim)
    tokenizer = _tokenizer(path)
    weights, tensors = _weights(path)
    for name, ref in tensors.items():
        if name not in shapes:
            if name == "lm_head.weight":  # tied in config but saved anyway: the embedding is what counts
                continue
            raise InvalidModelFile(f"unexpected tensor {name} ({ref.file.name}) for {arch}",
                                   hint="import a plain causal-LM checkpoint")
        if ref.shape != shapes[name]:
            raise InvalidModelFile(f"tensor {name} has shape {list(ref.shape)}, but config.json implies "
                                   f"{list(shapes[name])}", hint="use the config.json these weights were saved with")
    missing = [name for name in shapes if name not in tensors]
    if missing:
        raise InvalidModelFile(f"{len(missing)} tensors are missing, e.g. {missing[0]}",
                               hint="copy every weights file of the model")
    files = tuple(path / name for name in FILES if (path / name).is_file())
    return HFFolder(path, config, arch, spec, weights, files, tensors, tokenizer)
