"""peft LoRA tensors → a llama.cpp LoRA GGUF (``general.type = adapter``).

Names follow llama.cpp's tensor names (``blk.{i}.attn_q.weight.lora_a``); the arrays are peft's
``lora_A`` (``[r, in]``) and ``lora_B`` (``[out, r]``) as they are, float32, no transposition, and
``adapter.lora.alpha`` carries alpha so llama.cpp scales by ``alpha / r`` exactly as peft does.

One exception: llama.cpp's ``llama`` architecture stores ``attn_q``/``attn_k`` with their rows permuted
(rotary pairs instead of transformers' halves; see :func:`openzoo.formats.safetensors_gguf.permute_qk`),
so for such a base the rows of ``lora_b`` (the output side) of q and k are permuted the same way
(``qk_heads``), or the adapter would add its update to the wrong rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from openzoo.errors import InvalidRequest
from openzoo.formats.gguf import GGUFInfo, validate_gguf

__all__ = ["TARGET_NAMES", "gguf_tensor_name", "qk_heads_for", "write_lora_gguf"]

TARGET_NAMES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}

_PEFT_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.[\w-]+)?\.weight$")


def gguf_tensor_name(peft_key: str) -> str:
    """``...layers.3.self_attn.q_proj.lora_A.default.weight`` → ``blk.3.attn_q.weight.lora_a``."""
    match = _PEFT_KEY.search(peft_key)
    if match is None:
        raise InvalidRequest(f"cannot map LoRA tensor {peft_key!r} to a llama.cpp tensor name")
    layer, module, which = match.groups()
    if module not in TARGET_NAMES:
        raise InvalidRequest(f"LoRA target {module!r} has no llama.cpp tensor name")
    return f"blk.{layer}.{TARGET_NAMES[module]}.weight.lora_{which.lower()}"


def qk_heads_for(base: GGUFInfo) -> tuple[int, int] | None:
    """``(n_head, n_head_kv)`` when ``base`` stores q/k permuted (llama.cpp's ``llama``), else None."""
    if base.architecture != "llama":
        return None
    heads = base.kv.get("llama.attention.head_count")
    kv = base.kv.get("llama.attention.head_count_kv", heads)
    return (heads, kv) if isinstance(heads, int) and isinstance(kv, int) else None


def write_lora_gguf(path: Path, tensors: Mapping[str, Any], *, architecture: str, alpha: float,
                    name: str = "", base_name: str = "", qk_heads: tuple[int, int] | None = None) -> GGUFInfo:
    """Write peft ``tensors`` (name → tensor/array) as a llama.cpp LoRA GGUF and validate it."""
    import gguf

    from openzoo.formats.safetensors_gguf import permute_qk

    arrays: dict[str, np.ndarray] = {}
    for key, value in tensors.items():
        array = value.detach().cpu().float().numpy() if hasattr(value, "detach") else np.asarray(value)
        target = gguf_tensor_name(key)
        if qk_heads is not None and target.endswith(("attn_q.weight.lora_b", "attn_k.weight.lora_b")):
            array = permute_qk(np.asarray(array), qk_heads[0] if ".attn_q." in target else qk_heads[1])
        arrays[target] = np.ascontiguousarray(array, dtype=np.float32)
    if not arrays:
        raise InvalidRequest("no LoRA tensors to export")
    for key in arrays:
        if key.endswith("lora_a") and key[:-1] + "b" not in arrays:
            raise InvalidRequest(f"LoRA tensor {key} has no lora_b partner")
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    if name:
        writer.add_name(name)
    if base_name:
        writer.add_string("general.base_model.0.name", base_name)
        writer.add_uint32("general.base_model.count", 1)
    for key in sorted(arrays, key=_order):
        writer.add_tensor(key, arrays[key])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return validate_gguf(path)


def _order(name: str) -> tuple[int, str]:
    parts = name.split(".")
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1, name)
