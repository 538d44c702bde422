"""Quantization type names: llama.cpp's, any case, with its aliases; unknown names listed in the error."""

from __future__ import annotations

import llama_cpp.llama_cpp as L
import pytest

from openzoo.errors import InvalidRequest
from openzoo.quantize.types import QUANT_TYPES, parse_type, valid_names


@pytest.mark.parametrize(("text", "name", "ftype"), [
    ("Q4_0", "Q4_0", 2), ("q4_0", "Q4_0", 2), (" q2_k ", "Q2_K", 10), ("f16", "F16", 1), ("BF16", "BF16", 32),
    ("q4_k", "Q4_K_M", 15), ("Q5_K", "Q5_K_M", 17), ("q3_k", "Q3_K_M", 12), ("iq4_xs", "IQ4_XS", 30),
    ("Q8_0", "Q8_0", 7), ("f32", "F32", 0),
])
def test_parse_names_any_case_and_aliases(text: str, name: str, ftype: int) -> None:
    found = parse_type(text)
    assert (found.name, found.ftype) == (name, ftype)


def test_ftypes_are_llama_cpps() -> None:
    for qtype in QUANT_TYPES:
        constant = "LLAMA_FTYPE_ALL_F32" if qtype.name == "F32" else f"LLAMA_FTYPE_MOSTLY_{qtype.name}"
        assert getattr(L, constant) == qtype.ftype, qtype.name


def test_names_are_unique() -> None:
    names = valid_names()
    assert len(names) == len(set(names))
    assert len({t.ftype for t in QUANT_TYPES}) == len(QUANT_TYPES)


def test_importance_matrix_types() -> None:
    needing = {t.name for t in QUANT_TYPES if t.needs_imatrix}
    assert needing == {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "Q2_K_S"}


@pytest.mark.parametrize("text", ["Q9_9", "", "q4", "Q4_0 extra", "COPY"])
def test_unknown_types_are_refused_with_the_list(text: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_type(text)
    assert info.value.http_status == 400
    assert info.value.param == "quantize"
    assert "Q4_K_M" in info.value.message and "IQ2_XXS" in info.value.message and "F16" in info.value.message
