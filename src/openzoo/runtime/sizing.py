"""How much of the machine a loaded model takes by default: its slots and its prompt cache in RAM.

``OPENZOO_NUM_PARALLEL=auto`` (the default) and ``OPENZOO_PROMPT_CACHE_BYTES=auto`` are resolved here, at
load time, from the memory the system has available then (``MemAvailable`` in ``/proc/meminfo``) and
what one slot's KV cache costs for that model and context. On 2 cores, 8 sequences decoded together give
2.2x the tokens of one (``docs/architecture.md``), and a slot of the default model (Gemma 3 270M) at 4,096
tokens of context costs 75 MB of KV, so it gets 8 slots; a 7B model without grouped-query attention
(2 GiB of KV per slot at 4,096 tokens) gets 2 on a machine with 20 GB free.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["AUTO", "auto_prompt_cache_bytes", "auto_slots", "available_memory"]

#: The value of a setting that is chosen here (``LoadOptions.n_parallel`` and ``prompt_cache_bytes``).
AUTO = -1
#: Most slots ``auto`` gives: beyond 8 streams, a step's cost grows about as fast as its rows on CPUs.
MAX_AUTO_SLOTS = 8
#: Share of the available memory (after the weights) that ``auto`` gives the slots' KV cache.
KV_SHARE = 4  # one quarter
#: Share of the available memory given to the prompt cache, and its ceiling (llama-server's default).
CACHE_SHARE = 4
CACHE_CEILING = 8 << 30
#: Assumed when the system does not say (no ``/proc/meminfo``).
FALLBACK_AVAILABLE = 4 << 30


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Bytes the system can give without swapping (``MemAvailable``), or a modest guess if unknown."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return FALLBACK_AVAILABLE


def auto_slots(kv_bytes_per_slot: int, weights_bytes: int, available: int) -> int:
    """Slots for ``auto``: as many as a quarter of the memory left after the weights holds, 1 to 8."""
    spare = max(0, available - weights_bytes) // KV_SHARE
    return max(1, min(MAX_AUTO_SLOTS, spare // max(1, kv_bytes_per_slot)))


def auto_prompt_cache_bytes(available: int) -> int:
    """The prompt cache's budget for ``auto``: a quarter of the available memory, at most 8 GiB."""
    return min(CACHE_CEILING, max(0, available) // CACHE_SHARE)
