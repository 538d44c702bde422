"""``openzoo serve --replicas N`` / ``--config serve.yaml``: parsed before any Ray process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from openzoo.errors import InvalidRequest
from openzoo.scale.spec import ScaleSpec, load_spec, parse

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_no_flag_and_no_file_means_no_replicas() -> None:
    assert load_spec(None, None) is None


def test_replicas_flag_alone() -> None:
    spec = load_spec(None, 3)
    assert spec == ScaleSpec(replicas=3)
    assert spec is not None and spec.local_cpus == 3 and spec.threads(0) == 1 and spec.threads(4) == 4


def test_documented_serve_yaml_parses_and_flag_overrides_count() -> None:
    spec = load_spec(DOCS / "serve.yaml", None)
    assert spec == ScaleSpec(replicas=2, replica_cpus=1.0, max_ongoing_requests=0, ray_address=None,
                             ray_num_cpus=None, object_store_mb=100, name="openzoo")
    override = load_spec(DOCS / "serve.yaml", 4)
    assert override is not None and override.replicas == 4


def test_derived_values() -> None:
    spec = ScaleSpec(replicas=3, replica_cpus=0.5)
    assert spec.local_cpus == 2  # rounded up: Ray must have room for every replica
    assert spec.threads(0) == 1
    assert spec.ongoing(4, 512) == 516
    assert ScaleSpec(max_ongoing_requests=8).ongoing(4, 512) == 8
    assert ScaleSpec(ray_num_cpus=6).local_cpus == 6


@pytest.mark.parametrize(("data", "message"), [
    ({"replica": 2}, "unknown key"),
    ({"replicas": "2"}, "wrong type"),
    ({"replicas": True}, "wrong type"),
    ({"replicas": 0}, "at least 1"),
    ({"replica_cpus": 0}, "positive"),
    ({"object_store_mb": 10}, "at least 80"),
    ({"name": "no spaces"}, "letters, digits"),
    ([1, 2], "mapping"),
])
def test_bad_specs_say_why(data: object, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        parse(data)
    assert "scale-out.md" in info.value.hint


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="cannot read"):
        load_spec(tmp_path / "missing.yaml", None)
    broken = tmp_path / "serve.yaml"
    broken.write_text("replicas: [2\n")
    with pytest.raises(InvalidRequest, match="not valid YAML"):
        load_spec(broken, None)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_spec(empty, None) == ScaleSpec()
