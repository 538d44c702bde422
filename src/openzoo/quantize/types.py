"""The quantization types ``openzoo create --quantize`` accepts: llama.cpp's, by the names its quantize tool uses.

Pure data: the ``llama_ftype`` number each name maps to (checked against llama-cpp-python's
``LLAMA_FTYPE_*`` constants by a unit test), its bits per weight as llama.cpp describes it, and whether
llama.cpp refuses it without an importance matrix. Names are matched case-insensitively; ``Q4_K`` and
friends are the aliases llama.cpp's tool knows.

Why some types need an importance matrix: the 1- and 2-bit IQ types (and ``Q2_K_S``) spend their few bits
where a calibration run saw large activations; without one, llama.cpp stops with "Missing importance
matrix" part-way through. openzoo refuses them before any work unless an importance matrix is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from openzoo.errors import InvalidRequest

__all__ = ["QUANT_TYPES", "QuantType", "parse_type", "valid_names"]


@dataclass(frozen=True, slots=True)
class QuantType:
    """One target type: its canonical name, bits per weight, ``llama_ftype`` value and what llama.cpp says of it."""

    name: str
    bits: float  # bits per weight, roughly (what progress estimates the output size from)
    ftype: int
    description: str
    needs_imatrix: bool = False


QUANT_TYPES: tuple[QuantType, ...] = (
    QuantType("F32", 32, 0, "32-bit floats, no quantization"),
    QuantType("F16", 16, 1, "16-bit floats"),
    QuantType("BF16", 16, 32, "bfloat16"),
    QuantType("Q8_0", 8.5, 7, "8.5 bits per weight"),
    QuantType("Q6_K", 6.56, 18, "6.6 bits per weight"),
    QuantType("Q5_K_M", 5.7, 17, "5.7 bits per weight, K-quant mix"),
    QuantType("Q5_K_S", 5.5, 16, "5.5 bits per weight, K-quant mix"),
    QuantType("Q5_1", 6, 9, "6 bits per weight"),
    QuantType("Q5_0", 5.5, 8, "5.5 bits per weight"),
    QuantType("Q4_K_M", 4.9, 15, "4.9 bits per weight, K-quant mix"),
    QuantType("Q4_K_S", 4.6, 14, "4.6 bits per weight, K-quant mix"),
    QuantType("Q4_1", 5, 3, "5 bits per weight"),
    QuantType("Q4_0", 4.5, 2, "4.5 bits per weight"),
    QuantType("IQ4_NL", 4.5, 25, "4.5 bits per weight, non-linear"),
    QuantType("IQ4_XS", 4.25, 30, "4.25 bits per weight, non-linear"),
    QuantType("Q3_K_L", 4.3, 13, "4.3 bits per weight, K-quant mix"),
    QuantType("Q3_K_M", 3.9, 12, "3.9 bits per weight, K-quant mix"),
    QuantType("Q3_K_S", 3.5, 11, "3.5 bits per weight, K-quant mix"),
    QuantType("IQ3_M", 3.66, 27, "3.66 bits per weight, mix"),
    QuantType("IQ3_S", 3.44, 26, "3.44 bits per weight"),
    QuantType("IQ3_XS", 3.3, 22, "3.3 bits per weight"),
    QuantType("IQ3_XXS", 3.06, 23, "3.06 bits per weight"),
    QuantType("Q2_K", 3.4, 10, "3.4 bits per weight, K-quant mix"),
    QuantType("Q2_K_S", 3.2, 21, "3.2 bits per weight, K-quant mix", needs_imatrix=True),
    QuantType("IQ2_M", 2.7, 29, "2.7 bits per weight", needs_imatrix=True),
    QuantType("IQ2_S", 2.5, 28, "2.5 bits per weight", needs_imatrix=True),
    QuantType("IQ2_XS", 2.31, 20, "2.31 bits per weight", needs_imatrix=True),
    QuantType("IQ2_XXS", 2.06, 19, "2.06 bits per weight", needs_imatrix=True),
    QuantType("IQ1_M", 1.75, 31, "1.75 bits per weight", needs_imatrix=True),
    QuantType("IQ1_S", 1.56, 24, "1.56 bits per weight", needs_imatrix=True),
    QuantType("TQ2_0", 2.06, 37, "2.06 bits per weight, ternary (for ternary-trained models)"),
    QuantType("TQ1_0", 1.69, 36, "1.69 bits per weight, ternary (for ternary-trained models)"),
    QuantType("MXFP4_MOE", 4.25, 38, "MXFP4 for mixture-of-experts tensors"),
)

#: llama.cpp's quantize tool's aliases.
_ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}
_BY_NAME = {t.name: t for t in QUANT_TYPES}


def valid_names() -> list[str]:
    """Every accepted name, canonical ones first in the table's order, then the aliases."""
    return [t.name for t in QUANT_TYPES] + list(_ALIASES)


def parse_type(text: str) -> QuantType:
    """The type named ``text`` (any case, surrounding spaces ignored); a 400 listing the valid names if none."""
    key = text.strip().upper()
    key = _ALIASES.get(key, key)
    found = _BY_NAME.get(key)
    if found is None:
        raise InvalidRequest(f"unknown quantization type {text.strip()!r}; valid types: {', '.join(valid_names())}",
                             hint="pick one of the listed types, e.g. Q4_0 or Q8_0", param="quantize")
    return found
