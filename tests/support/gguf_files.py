"""Tiny synthetic GGUF files, written with gguf-py's own writer so they are valid by construction.

Shared by every test that needs a model file but not a real model (store, formats, API unit tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import gguf
import numpy as np


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    chat_template: str | None = None,
    file_type: int | None = 1,
    parameter_count: int | None = None,
    tokens: Sequence[str] = ("<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"),
    tensors: Mapping[str, np.ndarray] | None = None,
    alignment: int | None = None,
) -> Path:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("Tiny Test")
    writer.add_license("apache-2.0")
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    if file_type is not None:
        writer.add_file_type(file_type)
    if parameter_count is not None:
        writer.add_uint64("general.parameter_count", parameter_count)
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(list(tokens))
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([1] * len(tokens))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    if tensors is None:
        tensors = {
            "token_embd.weight": np.ones((8, 64), dtype=np.float16),
            "output_norm.weight": np.ones((64,), dtype=np.float32),
        }
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
