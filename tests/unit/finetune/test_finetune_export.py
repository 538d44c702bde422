"""peft LoRA tensors → llama.cpp LoRA GGUF: names, layout, and the checks against a base model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openzoo.errors import InvalidModelFile, InvalidRequest
from openzoo.finetune.export import gguf_tensor_name, write_lora_gguf
from openzoo.finetune.lora import LoraSettings
from openzoo.formats.gguf import check_adapter, validate_gguf
from support.gguf_files import write_gguf


@pytest.mark.parametrize(("peft", "gguf"), [
    ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", "blk.0.attn_q.weight.lora_a"),
    ("base_model.model.model.layers.17.self_attn.v_proj.lora_B.default.weight", "blk.17.attn_v.weight.lora_b"),
    ("base_model.model.model.layers.3.self_attn.k_proj.lora_A.weight", "blk.3.attn_k.weight.lora_a"),
    ("base_model.model.model.layers.3.self_attn.o_proj.lora_B.default.weight", "blk.3.attn_output.weight.lora_b"),
    ("base_model.model.model.layers.2.mlp.gate_proj.lora_A.default.weight", "blk.2.ffn_gate.weight.lora_a"),
    ("base_model.model.model.layers.2.mlp.up_proj.lora_A.default.weight", "blk.2.ffn_up.weight.lora_a"),
    ("base_model.model.model.layers.2.mlp.down_proj.lora_B.default.weight", "blk.2.ffn_down.weight.lora_b"),
])
def test_tensor_names_follow_llama_cpp(peft: str, gguf: str) -> None:
    assert gguf_tensor_name(peft) == gguf


def test_unknown_tensor_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        gguf_tensor_name("base_model.model.lm_head.lora_A.default.weight")


def lora_tensors(rank: int, d_in: int, d_out: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"base_model.model.model.layers.0.self_attn.q_proj.lora_{w}.default.weight":
            rng.standard_normal(shape).astype(np.float32)
            for w, shape in (("A", (rank, d_in)), ("B", (d_out, rank)))}


def base_with_q(path: Path, arch: str = "llama", d_in: int = 64, d_out: int = 32) -> Path:
    return write_gguf(path, arch=arch, tensors={"token_embd.weight": np.ones((8, 64), np.float16),
                                                "blk.0.attn_q.weight": np.ones((d_out, d_in), np.float32)})


def test_written_adapter_is_a_valid_lora_gguf(tmp_path: Path) -> None:
    tensors = lora_tensors(4, 64, 32)
    info = write_lora_gguf(tmp_path / "a.gguf", tensors, architecture="llama", alpha=8.0, name="t")
    assert info.kv["general.type"] == "adapter" and info.kv["adapter.type"] == "lora"
    assert info.kv["adapter.lora.alpha"] == pytest.approx(8.0)
    shapes = {t.name: t.shape for t in info.tensors}
    # GGUF lists the fastest dimension first: peft's A [r, in] and B [out, r] as they are.
    assert shapes == {"blk.0.attn_q.weight.lora_a": (64, 4), "blk.0.attn_q.weight.lora_b": (4, 32)}
    check_adapter(info, validate_gguf(base_with_q(tmp_path / "base.gguf")))


def test_adapter_for_another_architecture_or_shape_is_refused(tmp_path: Path) -> None:
    info = write_lora_gguf(tmp_path / "a.gguf", lora_tensors(4, 64, 32), architecture="llama", alpha=8.0)
    with pytest.raises(InvalidModelFile, match="architecture"):
        check_adapter(info, validate_gguf(base_with_q(tmp_path / "g.gguf", arch="gemma3")))
    with pytest.raises(InvalidModelFile, match="shape"):
        check_adapter(info, validate_gguf(base_with_q(tmp_path / "w.gguf", d_in=128)))
    not_adapter = validate_gguf(base_with_q(tmp_path / "m.gguf"))
    with pytest.raises(InvalidModelFile, match="not a LoRA adapter"):
        check_adapter(not_adapter, not_adapter)


@pytest.mark.parametrize(("change", "param"), [
    ({"rank": 0}, "rank"), ({"alpha": 0}, "alpha"), ({"dropout": 1.0}, "dropout"), ({"lr": 0}, "lr"),
    ({"targets": ("qkv",)}, "targets"), ({"max_steps": 0}, "max_steps"), ({"epochs": 0}, "epochs"),
])
def test_settings_are_checked(change: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        LoraSettings(**change).check()  # type: ignore[arg-type]
    assert err.value.param == param


def test_settings_round_trip() -> None:
    s = LoraSettings(rank=8, targets=("q_proj", "k_proj"), max_steps=3)
    assert LoraSettings.from_json(s.to_json()) == s
