"""A validated safetensors folder (:class:`~openzoo.formats.safetensors_folder.HFFolder`) → a llama.cpp GGUF.

Built on gguf-py (the ``gguf`` package llama.cpp itself converts with): :class:`gguf.GGUFWriter` writes
the file, :func:`gguf.get_tensor_name_map` names the tensors, :class:`gguf.SpecialVocab` reads the
special tokens, ``add_bos`` and the chat template from the tokenizer files. What openzoo adds is the
per-architecture part of llama.cpp's ``convert_hf_to_gguf.py`` for the architectures it imports:

* **gemma3**: Gemma's RMSNorm multiplies by ``1 + weight``, llama.cpp's by ``weight``, so every norm
  weight is stored plus one; the tied output matrix is the embedding (no ``output.weight``);
* **llama**: llama.cpp applies rotary embeddings to interleaved pairs, transformers to two halves, so
  the rows of ``q_proj`` and ``k_proj`` are permuted (:func:`permute_qk`), exactly as the reference
  converter does.

Precision is kept: F32 and F16 matrices are written as they are, BF16 as BF16 (its raw bits); vectors
(norms) are always F32, which llama.cpp requires. No quantization happens here, so the GGUF computes
what the safetensors weights compute.

The vocabulary is written as a SentencePiece (``llama``) tokenizer: tokens in id order, byte tokens
typed BYTE, added special tokens CONTROL, other added tokens USER_DEFINED. llama.cpp's SentencePiece
tokenizer merges the adjacent pair whose result scores highest; SentencePiece-BPE vocabularies are
ordered by merge priority (the order transformers rebuilds their merges from), so each token's score
is minus its id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from openzoo.errors import InvalidModelFile, NotSupported
from openzoo.formats.safetensors_folder import HFFolder, TensorRef

__all__ = ["convert_folder", "permute_qk", "vocabulary"]

_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def permute_qk(weights: np.ndarray[Any, Any], n_head: int) -> np.ndarray[Any, Any]:
    """Rows of a q/k projection from transformers' rotary layout (halves) to llama.cpp's (pairs)."""
    rows = weights.shape[0]
    return np.ascontiguousarray(
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape))


def _float32(ref: TensorRef) -> np.ndarray[Any, Any]:
    array = ref.array()
    if ref.dtype == "BF16":
        return (np.asarray(array).astype(np.uint32) << 16).view(np.float32)
    return np.asarray(array, dtype=np.float32)


def _adds_space_prefix(node: Any) -> bool:
    """Whether the tokenizer prepends "▁" to the text (Llama 2 does, Gemma does not)."""
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "Prepend" and node.get("prepend") == "\u2581":
            return True
        if kind == "Metaspace" and (node.get("prepend_scheme") in ("first", "always") or node.get("add_prefix_space")):
            return True
        return any(_adds_space_prefix(v) for v in node.values())
    if isinstance(node, list):
        return any(_adds_space_prefix(v) for v in node)
    return False


def vocabulary(folder: HFFolder, n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types in id order, padded to ``n_vocab`` (the embedding's rows)."""
    import gguf

    model = folder.tokenizer["model"]
    tokens: list[str | None] = [None] * n_vocab
    types = [int(gguf.TokenType.UNUSED)] * n_vocab
    for text, token_id in model["vocab"].items():
        if not isinstance(token_id, int) or not 0 <= token_id < n_vocab:
            raise InvalidModelFile(f"tokenizer.json: token {text!r} has id {token_id!r}, outside the model's "
                                   f"vocabulary of {n_vocab}", hint="use the tokenizer saved with the model")
        tokens[token_id] = text
        if _BYTE_TOKEN.fullmatch(text):
            types[token_id] = int(gguf.TokenType.BYTE)
        elif text == model.get("unk_token"):
            types[token_id] = int(gguf.TokenType.UNKNOWN)
        else:
            types[token_id] = int(gguf.TokenType.NORMAL)
    for added in folder.tokenizer.get("added_tokens") or []:
        token_id = added.get("id")
        if not isinstance(token_id, int) or not 0 <= token_id < n_vocab:
            raise InvalidModelFile(f"tokenizer.json: added token {added.get('content')!r} has id {token_id!r}, "
                                   f"outside the model's vocabulary of {n_vocab}")
        tokens[token_id] = str(added["content"])
        types[token_id] = int(gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED)
    texts = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    scores = [0.0 if kind == gguf.TokenType.BYTE else -float(i) for i, kind in enumerate(types)]
    return texts, scores, types


def _rope_theta(config: dict[str, Any], layer_type: str | None = None) -> float | None:
    params = config.get("rope_parameters") or {}
    if layer_type is not None and isinstance(params.get(layer_type), dict):
        params = params[layer_type]
    for source in (params, config):
        if isinstance(source, dict) and isinstance(source.get("rope_theta"), int | float):
            return float(source["rope_theta"])
    return None


def _check_rope(config: dict[str, Any]) -> None:
    params = config.get("rope_parameters") or {}
    candidates = [params, *(v for v in params.values() if isinstance(v, dict))] if isinstance(params, dict) else []
    candidates.append(config.get("rope_scaling") or {})
    for entry in candidates:
        kind = entry.get("rope_type") or entry.get("type") if isinstance(entry, dict) else None
        if kind not in (None, "default"):
            raise NotSupported(f"rope scaling {kind!r} cannot be converted yet",
                               hint="convert the model with llama.cpp's convert_hf_to_gguf.py and import the GGUF")


def _hparams(writer: Any, folder: HFFolder) -> None:
    config = folder.config
    arch = folder.spec.gguf_arch
    _check_rope(config)
    heads = folder.hparam("num_attention_heads")
    writer.add_context_length(folder.hparam("max_position_embeddings"))
    writer.add_embedding_length(folder.hparam("hidden_size"))
    writer.add_block_count(folder.hparam("num_hidden_layers"))
    writer.add_feed_forward_length(folder.hparam("intermediate_size"))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_key_length(folder.head_dim)
    writer.add_value_length(folder.head_dim)
    if arch == "gemma3":
        writer.add_rope_freq_base(_rope_theta(config, "full_attention") or 1_000_000.0)
        if config.get("final_logit_softcapping"):
            writer.add_final_logit_softcapping(float(config["final_logit_softcapping"]))
        if config.get("sliding_window"):
            writer.add_sliding_window(int(config["sliding_window"]))
            # llama.cpp assumes Gemma 3's 5-sliding-then-1-full pattern unless told; say it per layer
            layer_types = config.get("layer_types")
            if isinstance(layer_types, list) and len(layer_types) == folder.hparam("num_hidden_layers"):
                writer.add_sliding_window_pattern([kind == "sliding_attention" for kind in layer_types])
            local_theta = _rope_theta(config, "sliding_attention")
            if local_theta is not None:
                writer.add_rope_freq_base_swa(local_theta)
    else:
        writer.add_rope_freq_base(_rope_theta(config) or 10_000.0)
        writer.add_rope_dimension_count(folder.head_dim)
        writer.add_vocab_size(folder.hparam("vocab_size"))


def convert_folder(folder: HFFolder, out: Path, *, name: str,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write ``folder`` as a GGUF at ``out``; return a summary (architecture, file type, tensor count)."""
    import gguf

    arch = folder.spec.gguf_arch
    n_layers = folder.hparam("num_hidden_layers")
    heads = folder.hparam("num_attention_heads")
    kv_heads = int(folder.config.get("num_key_value_heads") or heads)
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], n_layers)
    embed = folder.tensors["model.embed_tokens.weight"]
    matrix_dtypes = {ref.dtype for ref in folder.tensors.values() if len(ref.shape) > 1}
    file_type = (gguf.LlamaFileType.MOSTLY_BF16 if "BF16" in matrix_dtypes else
                 gguf.LlamaFileType.MOSTLY_F16 if "F16" in matrix_dtypes else gguf.LlamaFileType.ALL_F32)

    writer = gguf.GGUFWriter(str(out), arch)
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name)
        _hparams(writer, folder)
        writer.add_file_type(int(file_type))
        tokens, scores, types = vocabulary(folder, embed.shape[0])
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_add_space_prefix(_adds_space_prefix(folder.tokenizer))
        gguf.SpecialVocab(folder.path, load_merges=False, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)

        names = sorted(folder.tensors)
        written = 0
        for done, key in enumerate(names, 1):
            ref = folder.tensors[key]
            if key == "lm_head.weight" and folder.tied:
                continue
            target = name_map.get_name(key, try_suffixes=(".weight", ".bias"))
            if target is None:
                raise NotSupported(f"tensor {key} has no llama.cpp name for {arch}")
            if len(ref.shape) == 1:
                vector = _float32(ref)
                if arch == "gemma3" and key.endswith("norm.weight"):
                    vector = vector + np.float32(1.0)
                writer.add_tensor(target, np.ascontiguousarray(vector, dtype=np.float32))
            else:
                matrix = ref.array()
                if arch == "llama" and key.endswith(("self_attn.q_proj.weight", "self_attn.k_proj.weight")):
                    matrix = permute_qk(np.asarray(matrix), heads if "q_proj" in key else kv_heads)
                if ref.dtype == "BF16":
                    writer.add_tensor(target, matrix, raw_dtype=gguf.GGMLQuantizationType.BF16)
                else:
                    writer.add_tensor(target, matrix)
            written += 1
            if progress is not None:
                progress(done, len(names))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return {"architecture": arch, "file_type": file_type.name, "tensors": written}
