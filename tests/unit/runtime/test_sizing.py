"""Slots and prompt-cache budget chosen from memory (runtime/sizing.py), and the prefix helper."""

from __future__ import annotations

from pathlib import Path

from openzoo.runtime.llamacpp.prompt_cache import shared_prefix
from openzoo.runtime.sizing import (
    FALLBACK_AVAILABLE,
    MAX_AUTO_SLOTS,
    auto_prompt_cache_bytes,
    auto_slots,
    available_memory,
)

GIB = 1 << 30


def test_a_small_model_gets_eight_slots() -> None:
    # Gemma 3 270M: 18 KiB of KV per token, 4,096 tokens per slot (75 MB), 253 MB of weights.
    assert auto_slots(18 * 1024 * 4096, 253_000_000, 20 * GIB) == MAX_AUTO_SLOTS == 8


def test_a_7b_model_gets_fewer() -> None:
    # Llama 2 7B (no grouped-query attention): 512 KiB per token, 2 GiB per slot at 4,096 tokens.
    assert auto_slots(2 * GIB, 4 * GIB, 20 * GIB) == 2


def test_at_least_one_slot_when_memory_is_short() -> None:
    assert auto_slots(2 * GIB, 4 * GIB, 3 * GIB) == 1
    assert auto_slots(0, 0, 0) == 1


def test_prompt_cache_budget_is_a_quarter_of_available_memory_at_most_8_gib() -> None:
    assert auto_prompt_cache_bytes(4 * GIB) == GIB
    assert auto_prompt_cache_bytes(64 * GIB) == 8 * GIB
    assert auto_prompt_cache_bytes(-1) == 0


def test_available_memory_reads_meminfo(tmp_path: Path) -> None:
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       24000000 kB\nMemAvailable:   2000000 kB\n")
    assert available_memory(info) == 2_000_000 * 1024
    assert available_memory(tmp_path / "missing") == FALLBACK_AVAILABLE


def test_shared_prefix() -> None:
    a = list(range(1000))
    assert shared_prefix(a, tuple(a)) == 1000
    assert shared_prefix(a, [*a[:10], -1, *a[11:]]) == 10
    assert shared_prefix(a, [5]) == 0
    assert shared_prefix(a, a, limit=7) == 7
    assert shared_prefix([], a) == 0
    assert shared_prefix(a, [*a[:999], -1]) == 999
