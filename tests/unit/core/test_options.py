from __future__ import annotations

import logging

import pytest

from openzoo import options
from openzoo.errors import InvalidRequest


def test_defaults_are_ollamas() -> None:
    opts = options.parse(None)
    assert opts.sampling.temperature == 0.8
    assert (opts.sampling.top_k, opts.sampling.top_p) == (40, 0.9)
    assert opts.num_predict == -1


def test_types_and_aliases() -> None:
    opts = options.parse({"temperature": 0, "top_k": 5.9, "max_tokens": 7, "stop": ["\n"], "seed": 3})
    assert opts.sampling.temperature == 0.0
    assert opts.sampling.top_k == 5
    assert opts.num_predict == 7
    assert opts.stop == ("\n",)
    assert opts.sampling.seed == 3


def test_num_predict_wins_over_max_tokens() -> None:
    assert options.parse({"num_predict": 3, "max_tokens": 9}).num_predict == 3


@pytest.mark.parametrize(("opts", "message"), [
    ({"top_k": "many"}, 'option "top_k" must be of type integer'),
    ({"temperature": "hot"}, 'option "temperature" must be of type number'),
    ({"stop": [1]}, 'option "stop" must be an array of strings'),
    ({"use_mmap": "yes"}, 'option "use_mmap" must be of type boolean'),
    ({"num_ctx": 0}, 'option "num_ctx" must be positive'),
])
def test_wrong_types(opts: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        options.parse(opts)


def test_unknown_options_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        opts = options.parse({"wobble": 3, "temperature": 0.5})
    assert opts.sampling.temperature == 0.5
    assert "wobble" in caplog.text


def test_merge_request_wins() -> None:
    assert options.merge({"temperature": 0.1, "top_k": 3}, {"temperature": 0.9}) == {"temperature": 0.9, "top_k": 3}


def test_parameters_text() -> None:
    text = options.parameters_text({"stop": ["a", "b"], "temperature": 0.5})
    assert text.splitlines() == [f'{"stop":<30} "a"', f'{"stop":<30} "b"', f'{"temperature":<30} 0.5']
