"""validate_gguf: facts from valid files, and a clean InvalidModelFile for every kind of bad one."""

from __future__ import annotations

import contextlib
import os
import random
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from openzoo.errors import InvalidModelFile
from openzoo.formats.gguf import human_number, validate_gguf

MakeGGUF = Callable[..., Path]


def header(version: int = 3, tensors: int = 0, kvs: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


def gstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv_u32(key: str, value: int) -> bytes:
    return gstr(key) + struct.pack("<II", 4, value)


def kv_str(key: str, value: str) -> bytes:
    return gstr(key) + struct.pack("<I", 8) + gstr(value)


def tensor_info(name: str, dims: list[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    return gstr(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, ggml_type, offset)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "crafted.gguf"
    path.write_bytes(data)
    return path


def hand_made(tensor_bytes: int = 16, dims: list[int] | None = None, **info: int) -> bytes:
    """A valid one-tensor file built by hand, to corrupt one field at a time."""
    head = header(tensors=1, kvs=1) + kv_str("general.architecture", "llama")
    body = head + tensor_info("w", dims or [4], **info)
    pad = -len(body) % 32
    return body + b"\0" * pad + b"\0" * tensor_bytes


# --- valid files -------------------------------------------------------------------------------


def test_reads_facts_from_a_synthetic_file(tiny_gguf: Path) -> None:
    info = validate_gguf(tiny_gguf)
    assert info.version == 3
    assert info.architecture == "llama" == info.family
    assert info.name == "Tiny Test"
    assert info.license == "apache-2.0"
    assert info.context_length == 2048
    assert info.embedding_length == 64
    assert info.chat_template is None
    assert info.quantization == "F16"
    assert info.tensor_count == 2
    assert info.parameter_count == 8 * 64 + 64
    assert info.parameter_size == "576"
    assert info.file_size == tiny_gguf.stat().st_size
    shapes = {t.name: (t.shape, t.type) for t in info.tensors}
    assert shapes == {"token_embd.weight": ((64, 8), "F16"), "output_norm.weight": ((64,), "F32")}


def test_metadata_empties_long_arrays_unless_verbose(tiny_gguf: Path) -> None:
    info = validate_gguf(tiny_gguf)
    short = info.metadata()
    assert short["tokenizer.ggml.tokens"] == []
    assert short["general.parameter_count"] == info.parameter_count
    assert short["llama.context_length"] == 2048
    verbose = info.metadata(verbose=True)
    assert verbose["tokenizer.ggml.tokens"] == ["<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"]
    assert verbose["tokenizer.ggml.scores"] == [0.0] * 8


def test_large_arrays_are_skipped_but_counted(make_gguf: MakeGGUF) -> None:
    tokens = [f"tok{i}" for i in range(5000)]
    info = validate_gguf(make_gguf(tokens=tokens))
    array = info.arrays["tokenizer.ggml.tokens"]
    assert (array.count, array.values, array.element_type) == (5000, None, "STRING")
    assert validate_gguf(info.path, load_arrays=True).arrays["tokenizer.ggml.tokens"].values == tuple(tokens)


def test_skipped_string_arrays_are_still_bounds_checked(make_gguf: MakeGGUF, tmp_path: Path) -> None:
    data = make_gguf(tokens=[f"tok{i}" for i in range(5000)]).read_bytes()
    start = data.index(b"tok0") - 8
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: start + 45_000])
    with pytest.raises(InvalidModelFile, match=r"tokenizer\.ggml\.tokens\[\d+\]"):
        validate_gguf(cut)
    huge = bytearray(data)
    length_at = data.index(b"tok100") - 8
    huge[length_at : length_at + 8] = struct.pack("<Q", 2**63)
    cut.write_bytes(bytes(huge))
    with pytest.raises(InvalidModelFile, match=r"tokenizer\.ggml\.tokens\[100\] runs past the end"):
        validate_gguf(cut)


def test_declared_parameter_count_and_chat_template(make_gguf: MakeGGUF) -> None:
    info = validate_gguf(make_gguf(parameter_count=7_615_616_512, chat_template="{{ messages }}"))
    assert info.parameter_count == 7_615_616_512
    assert info.parameter_size == "7.6B"
    assert info.chat_template == "{{ messages }}"


def test_quantization_falls_back_to_dominant_tensor_type(make_gguf: MakeGGUF) -> None:
    tensors = {
        "a.weight": np.ones((4, 64), dtype=np.float16),
        "b.weight": np.ones((2, 64), dtype=np.float32),
        "norm": np.ones((1024,), dtype=np.float32),
    }
    assert validate_gguf(make_gguf(file_type=None, tensors=tensors)).quantization == "F16"


@pytest.mark.parametrize(("file_type", "name"), [(0, "F32"), (2, "Q4_0"), (15, "Q4_K_M"), (32, "BF16")])
def test_file_type_names(make_gguf: MakeGGUF, file_type: int, name: str) -> None:
    assert validate_gguf(make_gguf(file_type=file_type)).quantization == name


def test_custom_alignment(make_gguf: MakeGGUF) -> None:
    info = validate_gguf(make_gguf(alignment=64))
    assert info.alignment == 64
    assert info.data_offset % 64 == 0


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0"), (999, "999"), (1500, "2K"), (268_098_176, "268.10M"), (3_000_000, "3M"),
     (7_615_616_512, "7.6B"), (8_000_000_000, "8B")],
)  # fmt: skip
def test_human_number_matches_ollama(count: int, text: str) -> None:
    assert human_number(count) == text


def test_hand_made_file_is_valid(tmp_path: Path) -> None:
    info = validate_gguf(write(tmp_path, hand_made()))
    assert info.tensors[0].n_bytes == 16


# --- invalid files ---------------------------------------------------------------------------


BAD_FILES = [
    (b"", "truncated header"),
    (b"PK\x03\x04" + b"\0" * 40, "not a GGUF file"),
    (header(version=1), "unsupported GGUF version 1"),
    (header(version=0x03000000), "unsupported GGUF version"),
    (header(tensors=2**63), "absurd tensor count"),
    (header(kvs=10**9), "absurd KV count"),
    (header(kvs=1) + gstr("k") + struct.pack("<I", 99) + b"\0" * 8, "unknown value type 99"),
    (header(kvs=1) + struct.pack("<Q", 2**62) + b"k" * 8 + b"\0" * 8, "exceeds 65535"),
    (header(kvs=1) + gstr("k") + struct.pack("<I", 8) + struct.pack("<Q", 10**12), "runs past the end"),
    (header(kvs=1) + gstr("k") + struct.pack("<IIQ", 9, 4, 2**60), "more than the file can hold"),
    (header(kvs=1) + gstr("k") + struct.pack("<IIQ", 9, 8, 2**40), "more than the file can hold"),
    (header(kvs=1) + gstr("k") + struct.pack("<IIQ", 9, 9, 1) + b"\0" * 16, "nested arrays"),
    (header(kvs=2) + kv_u32("k", 1) + kv_u32("k", 2), "duplicate key"),
    (header(kvs=1) + gstr(b"\xff\xfe") + struct.pack("<II", 4, 1), "not valid UTF-8"),
    (header(kvs=1) + kv_u32("general.alignment", 3) + b"\0" * 40, "not a power of two"),
    (header(kvs=1) + kv_u32("general.alignment", 0) + b"\0" * 40, "not a power of two"),
    (hand_made(dims=[0]), "zero dimension"),
    (hand_made(dims=[1, 1, 1, 1, 1]), "5 dimensions"),
    (hand_made(ggml_type=77), "unknown ggml type 77"),
    (hand_made(ggml_type=2), "not a multiple of block 32"),
    (hand_made(offset=8), "not aligned"),
    (hand_made(offset=2**40), "outside the file"),
    (hand_made(dims=[2**40]), "outside the file"),
    (hand_made(tensor_bytes=15), "outside the file"),
]


@pytest.mark.parametrize(("data", "reason"), BAD_FILES, ids=[reason for _, reason in BAD_FILES])
def test_rejects_bad_files_with_a_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(InvalidModelFile, match=reason) as caught:
        validate_gguf(write(tmp_path, data))
    assert "at byte" in str(caught.value)


def test_rejects_overlapping_tensors(tmp_path: Path) -> None:
    head = header(tensors=2, kvs=0) + tensor_info("a", [8]) + tensor_info("b", [8], offset=0)
    data = head + b"\0" * (-len(head) % 32) + b"\0" * 64
    with pytest.raises(InvalidModelFile, match="overlaps"):
        validate_gguf(write(tmp_path, data))


def test_rejects_duplicate_tensor_names(tmp_path: Path) -> None:
    head = header(tensors=2, kvs=0) + tensor_info("a", [8]) + tensor_info("a", [8], offset=32)
    with pytest.raises(InvalidModelFile, match="duplicate tensor name"):
        validate_gguf(write(tmp_path, head + b"\0" * 128))


def test_invalid_utf8_in_values_is_replaced(tmp_path: Path) -> None:
    data = header(kvs=1) + gstr("general.name") + struct.pack("<I", 8) + gstr(b"ab\xff")
    assert validate_gguf(write(tmp_path, data)).name == "ab\ufffd"


def test_non_regular_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.gguf"
    os.mkfifo(fifo)
    with pytest.raises(InvalidModelFile, match="not a regular file"):
        validate_gguf(fifo)
    with pytest.raises(InvalidModelFile, match="not a regular file"):
        validate_gguf(tmp_path)


def test_missing_file_is_an_invalid_model_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelFile, match="cannot open"):
        validate_gguf(tmp_path / "absent.gguf")


def test_every_truncation_is_reported(tiny_gguf: Path, tmp_path: Path) -> None:
    data = tiny_gguf.read_bytes()
    info = validate_gguf(tiny_gguf)
    cut_path = tmp_path / "cut.gguf"
    for cut in [*range(0, info.data_offset, 7), info.data_offset, len(data) - 1]:
        cut_path.write_bytes(data[:cut])
        with pytest.raises(InvalidModelFile):
            validate_gguf(cut_path)


def test_random_corruption_never_escapes_as_another_error(tiny_gguf: Path, tmp_path: Path) -> None:
    data = tiny_gguf.read_bytes()
    header_end = validate_gguf(tiny_gguf).data_offset
    rng = random.Random(1234)
    path = tmp_path / "fuzz.gguf"
    for _ in range(400):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(header_end)] = rng.randrange(256)
        path.write_bytes(bytes(mutated))
        with contextlib.suppress(InvalidModelFile):
            validate_gguf(path)
