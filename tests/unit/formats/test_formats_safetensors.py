"""Safetensors folders: the up-front checks of ``openzoo import DIR`` and the conversion to GGUF.

Tiny folders are written here byte by byte (safetensors is an 8-byte header length, a JSON header and
raw little-endian data), with a tiny SentencePiece-BPE ``tokenizer.json``; the llama.cpp comparison
tests build a random tiny model with transformers and check that llama.cpp computes the same logits
from the converted GGUF (the GGUF-specific rewrites, Gemma's ``1 + weight`` norms and Llama's rotary
row permutation, show up there and nowhere else).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from openzoo import config
from openzoo.errors import InvalidModelFile, NotFound, NotSupported
from openzoo.formats.gguf import validate_gguf
from openzoo.formats.safetensors_folder import SAFETENSORS_WEIGHTS, inspect_folder
from openzoo.formats.safetensors_gguf import convert_folder, permute_qk
from openzoo.runtime.llamacpp.native import ensure_backend
from openzoo.services import Services

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]
PIECES = ["<0x0A>", "<0x41>", "\u2581", "a", "b", "c", "d", "e", "\u2581a", "ab", "\u2581ab", "cd", "\u2581cd",
          "de", "\u2581b", "\u2581c", "abc", "\u2581abc", "ba", "ca", "dc", "ed", "ee", "\u2581e", "\u2581d", "bb",
          "cc", "dd"]
VOCAB = SPECIALS + PIECES  # 32


def tokenizer_json() -> dict[str, Any]:
    vocab = {token: i for i, token in enumerate(VOCAB)}
    merges = [[a, b] for token in VOCAB[len(SPECIALS):] for a, b in
              [(token[:i], token[i:]) for i in range(1, len(token))] if a in vocab and b in vocab]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, t in enumerate(SPECIALS)],
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                          "invert": False},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"},
                                                      "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str = "F32") -> Path:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, array in tensors.items():
        if dtype == "BF16":
            data = (np.ascontiguousarray(array, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            data = np.ascontiguousarray(array, {"F32": "<f4", "F16": "<f2"}[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
    return path


def tiny_config(arch: str) -> dict[str, Any]:
    common = {"hidden_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
              "intermediate_size": 32, "num_hidden_layers": 2, "vocab_size": len(VOCAB), "rms_norm_eps": 1e-6,
              "max_position_embeddings": 128, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0}
    if arch == "gemma3":
        return {**common, "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
                "tie_word_embeddings": True, "sliding_window": 64, "query_pre_attn_scalar": 8,
                "layer_types": ["sliding_attention", "full_attention"],
                "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                    "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}}}
    return {**common, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "tie_word_embeddings": False,
            "rope_theta": 10000.0, "hidden_act": "silu"}


def tiny_tensors(cfg: dict[str, Any], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, hd, nh, nkv, inter = (cfg[k] for k in ("hidden_size", "head_dim", "num_attention_heads",
                                                "num_key_value_heads", "intermediate_size"))
    gemma = cfg["architectures"][0].startswith("Gemma")

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (rng.standard_normal(n) * 0.1 + (0.0 if gemma else 1.0)).astype(np.float32)

    tensors = {"model.embed_tokens.weight": w(cfg["vocab_size"], h), "model.norm.weight": norm(h)}
    if not cfg["tie_word_embeddings"]:
        tensors["lm_head.weight"] = w(cfg["vocab_size"], h)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors.update({p + "self_attn.q_proj.weight": w(nh * hd, h), p + "self_attn.k_proj.weight": w(nkv * hd, h),
                        p + "self_attn.v_proj.weight": w(nkv * hd, h), p + "self_attn.o_proj.weight": w(h, nh * hd),
                        p + "mlp.gate_proj.weight": w(inter, h), p + "mlp.up_proj.weight": w(inter, h),
                        p + "mlp.down_proj.weight": w(h, inter), p + "input_layernorm.weight": norm(h),
                        p + "post_attention_layernorm.weight": norm(h)})
        if gemma:
            tensors.update({p + "self_attn.q_norm.weight": norm(hd), p + "self_attn.k_norm.weight": norm(hd),
                            p + "pre_feedforward_layernorm.weight": norm(h),
                            p + "post_feedforward_layernorm.weight": norm(h)})
    return tensors


def make_folder(path: Path, arch: str = "gemma3", *, dtype: str = "F32", shards: int = 1,
                config_changes: dict[str, Any] | None = None) -> tuple[Path, dict[str, np.ndarray]]:
    path.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config(arch)
    tensors = tiny_tensors(cfg)
    cfg.update(config_changes or {})
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "tokenizer.json").write_text(json.dumps(tokenizer_json()))
    (path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<bos>", "eos_token": "<eos>",
                                                            "unk_token": "<unk>", "pad_token": "<pad>",
                                                            "tokenizer_class": "GemmaTokenizer"}))
    if shards == 1:
        write_safetensors(path / "model.safetensors", tensors, dtype)
    else:
        names = sorted(tensors)
        weight_map = {}
        for k in range(shards):
            part = names[k::shards]
            file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
            write_safetensors(path / file, {n: tensors[n] for n in part}, dtype)
            weight_map.update(dict.fromkeys(part, file))
        (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return path, tensors


def gguf_arrays(path: Path) -> dict[str, np.ndarray]:
    reader = gguf.GGUFReader(str(path))
    return {t.name: np.array(t.data) for t in reader.tensors}


# ------------------------------------------------------------------------------------------ checks


def test_valid_sharded_folder_is_described(tmp_path: Path) -> None:
    folder, tensors = make_folder(tmp_path / "m", shards=3)
    info = inspect_folder(folder)
    assert info.architecture == "Gemma3ForCausalLM" and info.spec.gguf_arch == "gemma3"
    assert len(info.weights) == 3 and set(info.tensors) == set(tensors)
    assert {p.name for p in info.files} == {"config.json", "tokenizer.json", "tokenizer_config.json",
                                            "model.safetensors.index.json"}
    ref = info.tensors["model.layers.1.mlp.down_proj.weight"]
    np.testing.assert_array_equal(ref.array(), tensors["model.layers.1.mlp.down_proj.weight"])


@pytest.mark.parametrize(("damage", "error", "text"), [
    ("no-config", InvalidModelFile, "has no config.json"),
    ("bad-config", InvalidModelFile, "config.json is not valid JSON"),
    ("unknown-arch", NotSupported, "architecture MambaForCausalLM cannot be imported"),
    ("truncated", InvalidModelFile, "model.safetensors is not a valid safetensors file"),
    ("garbage-header", InvalidModelFile, "not a valid safetensors file: header is not UTF-8 JSON"),
    ("shape", InvalidModelFile, "implies"),
    ("dtype", InvalidModelFile, "has dtype I32"),
    ("missing-tensor", InvalidModelFile, "tensors are missing"),
    ("extra-tensor", InvalidModelFile, "unexpected tensor vision_tower.weight"),
    ("no-tokenizer", InvalidModelFile, "no tokenizer.json"),
    ("sentencepiece-only", NotSupported, "tokenizer.model alone"),
    ("byte-level", NotSupported, "byte-level BPE"),
    ("missing-shard", InvalidModelFile, "model-00002-of-00002.safetensors named in"),
])
def test_bad_folders_are_refused_with_a_clear_error(tmp_path: Path, damage: str, error: type[Exception],
                                                    text: str) -> None:
    folder, tensors = make_folder(tmp_path / "m", shards=2 if damage == "missing-shard" else 1)
    weights = folder / "model.safetensors"
    cfg = json.loads((folder / "config.json").read_text())
    if damage == "no-config":
        (folder / "config.json").unlink()
    elif damage == "bad-config":
        (folder / "config.json").write_text("{not json")
    elif damage == "unknown-arch":
        (folder / "config.json").write_text(json.dumps({**cfg, "architectures": ["MambaForCausalLM"]}))
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "garbage-header":
        weights.write_bytes(struct.pack("<Q", 16) + b"\xff" * 16 + b"\0" * 64)
    elif damage == "shape":
        (folder / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 48}))
    elif damage == "dtype":
        write_safetensors(weights, {**tensors, "model.norm.weight": np.zeros(16, np.float32)})
        raw = weights.read_bytes()
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        header["model.norm.weight"]["dtype"] = "I32"
        new = json.dumps(header).encode().ljust(n)
        weights.write_bytes(raw[:8] + new + raw[8 + n:])
    elif damage == "missing-tensor":
        write_safetensors(weights, {k: v for k, v in tensors.items() if "layers.1.mlp.up_proj" not in k})
    elif damage == "extra-tensor":
        write_safetensors(weights, {**tensors, "vision_tower.weight": np.zeros(4, np.float32)})
    elif damage == "no-tokenizer":
        (folder / "tokenizer.json").unlink()
    elif damage == "sentencepiece-only":
        (folder / "tokenizer.json").unlink()
        (folder / "tokenizer.model").write_bytes(b"\0")
    elif damage == "byte-level":
        tok = tokenizer_json()
        tok["model"]["byte_fallback"] = False
        (folder / "tokenizer.json").write_text(json.dumps(tok))
    elif damage == "missing-shard":
        (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(error, match=text):
        inspect_folder(folder)


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        inspect_folder(tmp_path / "nothing")


# ------------------------------------------------------------------------------------------ conversion


def test_gemma3_conversion_names_norms_and_vocab(tmp_path: Path) -> None:
    folder, tensors = make_folder(tmp_path / "m")
    out = tmp_path / "m.gguf"
    summary = convert_folder(inspect_folder(folder), out, name="me/tiny")
    assert summary == {"architecture": "gemma3", "file_type": "ALL_F32", "tensors": len(tensors)}
    info = validate_gguf(out)
    assert info.architecture == "gemma3" and info.kv["gemma3.attention.sliding_window"] == 64
    assert info.kv["gemma3.rope.freq_base"] == 1000000.0 and info.kv["gemma3.attention.head_count_kv"] == 1
    assert info.kv["tokenizer.ggml.model"] == "llama" and info.kv["tokenizer.ggml.bos_token_id"] == 2
    assert info.kv["tokenizer.ggml.add_bos_token"] is True and info.kv["tokenizer.ggml.add_space_prefix"] is False
    arrays = gguf_arrays(out)
    assert "output.weight" not in arrays  # tied: llama.cpp uses the embedding
    np.testing.assert_array_equal(arrays["blk.1.ffn_down.weight"], tensors["model.layers.1.mlp.down_proj.weight"])
    # Gemma's RMSNorm scales by (1 + w), llama.cpp's by w
    q_norm = tensors["model.layers.0.self_attn.q_norm.weight"]
    np.testing.assert_allclose(arrays["blk.0.attn_q_norm.weight"], q_norm + 1)
    np.testing.assert_allclose(arrays["output_norm.weight"], tensors["model.norm.weight"] + 1)
    reader = gguf.GGUFReader(str(out))
    types = reader.fields["tokenizer.ggml.token_type"]
    kinds = [int(types.parts[i][0]) for i in types.data]
    assert kinds[:4] == [gguf.TokenType.CONTROL] * 4 and kinds[4] == gguf.TokenType.BYTE
    assert kinds[6] == gguf.TokenType.NORMAL


def test_llama_conversion_permutes_q_and_k_and_keeps_bf16(tmp_path: Path) -> None:
    folder, tensors = make_folder(tmp_path / "m", "llama", dtype="BF16")
    out = tmp_path / "m.gguf"
    assert convert_folder(inspect_folder(folder), out, name="x")["file_type"] == "MOSTLY_BF16"
    reader = gguf.GGUFReader(str(out))
    by_name = {t.name: t for t in reader.tensors}
    assert by_name["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.BF16
    assert by_name["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    bf16 = (tensors["model.layers.0.self_attn.k_proj.weight"].view(np.uint32) >> 16).astype(np.uint16)
    stored = np.array(by_name["blk.0.attn_k.weight"].data).view(np.uint16).reshape(bf16.shape)
    np.testing.assert_array_equal(stored, permute_qk(bf16, 1))  # exact bits, rows permuted for 1 KV head
    assert "output.weight" in by_name


# ------------------------------------------------------------------------------------------ llama.cpp agrees


@pytest.mark.parametrize("arch", ["gemma3", "llama"])
def test_llama_cpp_computes_what_transformers_computes(tmp_path: Path, arch: str) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    llama_cpp = pytest.importorskip("llama_cpp")
    # llama.cpp is set up for the whole process as openzoo's engine needs it (native.py): ggml reads its
    # kernel settings at the first matrix product, so a bare Llama here would fix them for later tests.
    ensure_backend()
    folder, _ = make_folder(tmp_path / "m", arch)
    out = tmp_path / "m.gguf"
    convert_folder(inspect_folder(folder), out, name="x")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    ids = [2, 11, 7, 9, 14, 20, 5, 8]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    # F32 KV cache: the default F16 cache alone moves logits by ~3e-3
    llm = llama_cpp.Llama(str(out), n_ctx=32, logits_all=True, verbose=False, n_threads=1, type_k=0, type_v=0)
    try:
        llm.eval(ids)
        got = np.array(llm.scores[:len(ids)])
    finally:
        llm.close()
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=1e-3)


# ------------------------------------------------------------------------------------------ the store


def test_import_stores_layers_and_a_failure_stores_nothing(tmp_path: Path, home: Path) -> None:
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    try:
        folder, _ = make_folder(tmp_path / "m", shards=2)
        events = [e.status for e in services.models.import_folder(folder, "me/tiny")]
        assert events[-1] == "success"
        spec = services.models.resolve("me/tiny")
        assert spec.manifest is not None and spec.config["source_format"] == "safetensors"
        assert [layer.annotations["org.openzoo.filename"] for layer in spec.manifest.layers_of(SAFETENSORS_WEIGHTS)] \
            == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        assert validate_gguf(spec.weights).architecture == "gemma3"
        models = [m.name for m in services.models.list_models()]
        blobs = sorted(services.store.blobs.digests())
        # fails in the conversion, after validation: nothing of it may stay behind
        bad, _ = make_folder(tmp_path / "bad", config_changes={"max_position_embeddings": 0})
        with pytest.raises(InvalidModelFile, match="max_position_embeddings"):
            list(services.models.import_folder(bad, "me/bad"))
        bad_arch, _ = make_folder(tmp_path / "bad2", config_changes={"architectures": ["BertModel"]})
        with pytest.raises(NotSupported, match="BertModel"):
            list(services.models.import_folder(bad_arch, "me/bad"))
        assert [m.name for m in services.models.list_models()] == models
        assert sorted(services.store.blobs.digests()) == blobs
        assert not [p for p in home.iterdir() if p.name.startswith("openzoo-import-")]
    finally:
        services.close()


@pytest.mark.parametrize("arch", ["gemma3", "llama"])
def test_lora_adapter_on_a_converted_base_matches_peft(tmp_path: Path, arch: str) -> None:
    """A peft LoRA on q/k/v, exported by openzoo, applied by llama.cpp = the merged PyTorch model.

    For ``llama`` the base's q/k rows are permuted in the GGUF, so the adapter's ``lora_b`` must be too.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    llama_cpp = pytest.importorskip("llama_cpp")
    # llama.cpp is set up for the whole process as openzoo's engine needs it (native.py): ggml reads its
    # kernel settings at the first matrix product, so a bare Llama here would fix them for later tests.
    ensure_backend()
    from openzoo.finetune.export import qk_heads_for, write_lora_gguf

    folder, _ = make_folder(tmp_path / "m", arch)
    base = tmp_path / "m.gguf"
    convert_folder(inspect_folder(folder), base, name="x")
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"],
                                                      lora_dropout=0.0))
    state = {k: (torch.randn_like(v) * 0.3) for k, v in lora.state_dict().items() if "lora_" in k}
    lora.load_state_dict(state, strict=False)
    adapter = tmp_path / "adapter.gguf"
    write_lora_gguf(adapter, state, architecture=arch, alpha=8.0, qk_heads=qk_heads_for(validate_gguf(base)))
    ids = [2, 11, 7, 9, 14, 20, 5, 8]
    merged = lora.merge_and_unload().eval()
    with torch.no_grad():
        expected = merged(torch.tensor([ids])).logits[0].numpy()
    llm = llama_cpp.Llama(str(base), lora_path=str(adapter), n_ctx=32, logits_all=True, verbose=False, n_threads=1,
                          type_k=0, type_v=0)
    try:
        llm.eval(ids)
        got = np.array(llm.scores[:len(ids)])
    finally:
        llm.close()
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=1e-3)
