from __future__ import annotations

from pathlib import Path

import pytest

from openzoo import config
from openzoo.errors import InvalidRequest


def test_defaults() -> None:
    cfg = config.load({})
    assert (cfg.host, cfg.port, cfg.scheme) == ("127.0.0.1", 11434, "http")
    assert cfg.keep_alive == 300.0
    assert cfg.home == Path("~/.openzoo").expanduser()


def test_openzoo_wins_over_ollama() -> None:
    cfg = config.load({"OLLAMA_HOST": "0.0.0.0:1", "OPENZOO_HOST": "127.0.0.2:2", "OLLAMA_KEEP_ALIVE": "1h"})
    assert (cfg.host, cfg.port) == ("127.0.0.2", 2)
    assert cfg.keep_alive == 3600.0


def test_ollama_models_sets_home() -> None:
    assert config.load({"OLLAMA_MODELS": "/tmp/x"}).home == Path("/tmp/x")


@pytest.mark.parametrize(("value", "seconds"), [
    ("5m", 300.0), ("1h30m", 5400.0), ("10", 10.0), (0, 0.0), ("-1", None), (-1, None), ("250ms", 0.25),
    ("1.5h", 5400.0),
])
def test_durations(value: object, seconds: float | None) -> None:
    assert config.parse_duration(value) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "m5", "", True, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(InvalidRequest):
        config.parse_duration(bad)


@pytest.mark.parametrize(("text", "expected"), [
    ("example.com", ("http", "example.com", 11434)),
    ("http://example.com", ("http", "example.com", 80)),
    ("https://example.com", ("https", "example.com", 443)),
    (":9000", ("http", "127.0.0.1", 9000)),
    ("[::1]:8080", ("http", "::1", 8080)),
])
def test_hosts(text: str, expected: tuple[str, str, int]) -> None:
    assert config.parse_host(text) == expected


def test_bad_integer_setting_names_variable() -> None:
    with pytest.raises(InvalidRequest, match="OPENZOO_NUM_PARALLEL"):
        config.load({"OPENZOO_NUM_PARALLEL": "many"})


def test_markdown_lists_every_setting() -> None:
    text = config.render_markdown()
    for setting in config.SETTINGS:
        assert f"`OPENZOO_{setting.name}`" in text


def test_docs_configuration_is_generated() -> None:
    docs = Path(__file__).parents[3] / "docs" / "configuration.md"
    assert docs.read_text() == config.render_markdown(), "run 'make docs' to regenerate"


def test_monitor_settings() -> None:
    cfg = config.load({"OPENZOO_MONITOR_PEERS": " http://a:1/ , b:2,", "OPENZOO_MONITOR_INTERVAL": "30s"})
    assert cfg.monitor_peers == ("http://a:1", "b:2") and cfg.monitor_interval == 30.0
    assert (config.load({}).monitor_peers, config.load({}).monitor_interval) == ((), 300.0)
    assert config.load({"OPENZOO_MONITOR_INTERVAL": "0"}).monitor_interval == 0.0
    with pytest.raises(InvalidRequest, match="not a zoo URL"):
        config.load({"OPENZOO_MONITOR_PEERS": "http://a b"})


def test_num_parallel_and_prompt_cache_default_to_auto() -> None:
    cfg = config.load({})
    assert cfg.num_parallel == 0 and cfg.prompt_cache_bytes == -1  # chosen per model at load
    cfg = config.load({"OPENZOO_NUM_PARALLEL": "3", "OPENZOO_PROMPT_CACHE_BYTES": "0"})
    assert cfg.num_parallel == 3 and cfg.prompt_cache_bytes == 0
    with pytest.raises(InvalidRequest, match="OPENZOO_PROMPT_CACHE_BYTES"):
        config.load({"OPENZOO_PROMPT_CACHE_BYTES": "lots"})


def test_batch_invariance_is_on_unless_turned_off() -> None:
    assert config.load({}).batch_invariant is True
    assert config.load({"OPENZOO_BATCH_INVARIANT": "0"}).batch_invariant is False
