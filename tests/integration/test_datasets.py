"""Datasets end to end with real ``openzoo`` processes and real zoos on loopback.

Zoo A imports one dataset per format (JSONL with a full Hugging Face datasheet, CSV, Parquet), certifies
all three (reviewers alice, bob and carol, 2 of 3) and serves them; zoo B trusts A's key and pulls a sealed
dataset (verified, every row checked) and verifies it offline; zoo C accepts a push with its API key. A copy
of A whose dataset manifest points at other data is refused by pulls and pushes. Bad input never stores
anything. (Fine-tuning on a dataset, with the lineage walk, is in test_finetune.py, which shares the
fine-tuning fixtures.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openzoo import names
from openzoo.facts.card import parse_card
from openzoo.finetune.data import bundled
from openzoo.schema import open_store
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest
from support.cli import clone_home
from support.cli import openzoo as oz
from support.oci_registry import Registry, oci_registry  # noqa: F401  (the fixture)
from support.server import Server, start_server, stop_server

NOTES, LABELS, SCORES = "me/notes:v1", "me/labels:v1", "me/scores:v1"
DATASHEET = """---
pretty_name: Keeper's notes
license: cc-by-4.0
language:
- en
task_categories:
- text-generation
---

# Keeper's notes

## Motivation
A small, distinctive text distribution for fine-tuning tests, made by the openzoo authors.

## Composition
Forty one-line notes about sixteen fictional animals; no personal data.

## Collection process
Generated from word lists written for openzoo, with a fixed seed.

## Preprocessing, cleaning and labeling
None: the generated lines are kept as they are.

## Uses
Fine-tuning demos and tests; not for anything about real animals.

## Distribution
From the openzoo repository under CC-BY-4.0.

## Maintenance
The openzoo authors; report problems as issues.
"""


def out(result: CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def ok(result: CompletedProcess[str]) -> CompletedProcess[str]:
    assert result.returncode == 0, out(result)
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    lines = bundled("zoo_log.jsonl").read_text().splitlines()[:40]
    (folder / "notes.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "labels.csv").write_text("text,label\n" + "".join(f"note {i},{i % 2}\n" for i in range(12)))
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(25)], "score": [i / 10 for i in range(25)]}),
                   folder / "scores.parquet")
    (folder / "README.md").write_text(DATASHEET)
    return {p.name: p for p in folder.iterdir()}


@pytest.fixture(scope="module")
def zoo_a(model_home: Path, data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Zoo A: three datasets imported and sealed through the CLI, every command's result kept."""
    home = clone_home(model_home, tmp_path_factory.mktemp("zoo") / "a")
    steps: dict[str, object] = {"home": home}
    steps["import jsonl"] = oz(home, "dataset", "import", str(data["notes.jsonl"]), "--name", NOTES,
                               "--license", "CC-BY-4.0", "--datasheet", str(data["README.md"]))
    steps["import csv"] = oz(home, "dataset", "import", str(data["labels.csv"]), "--name", LABELS,
                             "--license", "CDLA-Permissive-2.0")
    steps["import parquet"] = oz(home, "dataset", "import", str(data["scores.parquet"]), "--name", SCORES,
                                 "--license", "ODC-By-1.0")
    for reviewer in ("alice", "bob", "carol"):
        ok(oz(home, "keys", "generate", reviewer))
    ok(oz(home, "certify", "policy", "--reviewers", "alice,bob,carol", "--threshold", "2"))
    for name in (NOTES, LABELS, SCORES):
        steps[f"request {name}"] = oz(home, "certify", "request", name)
        steps[f"approve {name}"] = [oz(home, "certify", "approve", name, "--key", key) for key in ("alice", "bob")]
        steps[f"verify {name}"] = oz(home, "verify", name)
    pub = home.parent / "zoo.pub"
    pub.write_text(ok(oz(home, "keys", "export", "zoo")).stdout)
    steps["pub"] = pub
    return steps


def step(zoo: dict[str, object], name: str) -> CompletedProcess[str]:
    result = zoo[name]
    assert isinstance(result, CompletedProcess)
    return result


@pytest.fixture(scope="module")
def server_a(zoo_a: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(zoo_a["home"], tmp_path_factory.mktemp("logs") / "zoo-a.log")  # type: ignore[arg-type]
    yield srv
    stop_server(srv)


def test_import_three_formats(zoo_a: dict[str, object]) -> None:
    for key, rows in (("import jsonl", 40), ("import csv", 12), ("import parquet", 25)):
        result = ok(step(zoo_a, key))
        assert f": {rows} rows, data sha256:" in result.stdout, out(result)
    home = zoo_a["home"]
    assert isinstance(home, Path)
    listed = ok(oz(home, "dataset", "list")).stdout.splitlines()
    assert sorted(line.split()[0] for line in listed[1:]) == sorted([NOTES, LABELS, SCORES])
    assert all(" sealed " in line for line in listed[1:]), listed
    models = ok(oz(home, "list")).stdout
    assert "gemma3:270m" in models and "me/" not in models  # `openzoo list` shows models only
    shown = json.loads(ok(oz(home, "dataset", "show", SCORES, "--json")).stdout)
    assert shown["format"] == "parquet" and shown["rows"] == 25 and shown["license"] == "ODC-By-1.0"
    assert [c["name"] for c in shown["files"][0]["columns"]] == ["text", "score"]
    run = oz(home, "run", NOTES, "hello")
    assert run.returncode == 1 and "is a dataset, not a model" in run.stderr


def test_seal_log_and_verify(zoo_a: dict[str, object]) -> None:
    notes = ok(step(zoo_a, f"request {NOTES}")).stdout
    assert "open content license (Creative Commons Attribution 4.0)" in notes and "  card " not in notes
    labels = ok(step(zoo_a, f"request {LABELS}")).stdout
    assert "datasheet question 'Motivation' is not answered" in labels
    for name in (NOTES, LABELS, SCORES):
        approvals = zoo_a[f"approve {name}"]
        assert isinstance(approvals, list) and "sealed" in ok(approvals[-1]).stdout
        verified = ok(step(zoo_a, f"verify {name}")).stdout
        assert f"verified: {name} is certified by this zoo" in verified
        for check in ("digests", "seal signature", "quorum", "log inclusion", "revocation", "approvals logged"):
            assert any(line.startswith("ok") and check in line for line in verified.splitlines()), verified
    home = zoo_a["home"]
    assert isinstance(home, Path)
    log = ok(oz(home, "log", "show", "--kind", "request")).stdout.splitlines()
    assert len(log) == 3 and all(lic in "".join(log) for lic in ("CC-BY-4.0", "CDLA-Permissive-2.0", "ODC-By-1.0"))
    assert "log verified" in ok(oz(home, "log", "verify")).stdout


def test_datasheet_exports_as_a_hugging_face_card(zoo_a: dict[str, object], data: dict[str, Path]) -> None:
    home = zoo_a["home"]
    assert isinstance(home, Path)
    card = parse_card(ok(oz(home, "dataset", "card", NOTES)).stdout)
    original = parse_card(data["README.md"].read_text())
    assert card.body == original.body
    assert {k: card.metadata[k] for k in original.metadata} == original.metadata
    assert card.metadata["configs"] == [{"config_name": "default",
                                         "data_files": [{"split": "train", "path": "notes.jsonl"}]}]
    draft = parse_card(ok(oz(home, "dataset", "card", LABELS)).stdout)
    assert draft.metadata["license"] == "cdla-permissive-2.0" and "## Motivation" in draft.body


def test_pull_into_a_second_zoo_is_verified(zoo_a: dict[str, object], server_a: Server, tmp_path: Path) -> None:
    home_b = tmp_path / "b"
    ok(oz(home_b, "keys", "trust", "zoo-a", str(zoo_a["pub"])))
    pull = ok(oz(home_b, "pull", f"{server_a.host}/{NOTES}"))
    assert f"checking every row of {server_a.host}/{NOTES}" in pull.stderr
    assert "verified against zoo-a" in pull.stderr and "tagged as certified" in pull.stderr
    verify = ok(oz(home_b, "verify", NOTES))
    assert f"verified: {NOTES} is certified by zoo-a" in verify.stdout
    theirs = json.loads(ok(oz(zoo_a["home"], "dataset", "show", NOTES, "--json")).stdout)  # type: ignore[arg-type]
    mine = json.loads(ok(oz(home_b, "dataset", "show", NOTES, "--json")).stdout)
    assert mine["digest"] == theirs["digest"] and mine["data_digest"] == theirs["data_digest"] and mine["sealed"]
    assert ok(oz(home_b, "list")).stdout.strip() == "NAME    ID    SIZE    MODIFIED"
    served = httpx.get(f"{server_a.url}/zoo/datasets", timeout=30).json()["datasets"]
    assert sorted(d["name"] for d in served) == sorted([NOTES, LABELS, SCORES])
    tags = httpx.get(f"{server_a.url}/api/tags", timeout=30).json()["models"]
    assert [m["name"] for m in tags] == ["gemma3:270m"]  # Ollama clients never see datasets


def test_push_to_a_zoo_that_accepts_it(zoo_a: dict[str, object], model_home: Path, tmp_path: Path) -> None:
    srv = start_server(clone_home(model_home, tmp_path / "c"), tmp_path / "zoo-c.log", {"OPENZOO_API_KEY": "s3cret"})
    try:
        target = f"{srv.host}/{LABELS}"
        home = zoo_a["home"]
        assert isinstance(home, Path)
        refused = oz(home, "push", LABELS, "--to", target)
        assert refused.returncode == 1 and "API key" in refused.stderr, out(refused)
        ok(oz(home, "push", LABELS, "--to", target, env={"OPENZOO_REMOTE_API_KEY": "s3cret"}))
        auth = {"Authorization": "Bearer s3cret"}
        pushed = httpx.get(f"{srv.url}/zoo/datasets/{LABELS}", headers=auth, timeout=30).json()
        local = json.loads(ok(oz(home, "dataset", "show", LABELS, "--json")).stdout)
        assert pushed["digest"] == local["digest"] and pushed["rows"] == 12 and pushed["sealed"]
        tags = httpx.get(f"{srv.url}/api/tags", headers=auth, timeout=30).json()["models"]
        assert [m["name"] for m in tags] == ["gemma3:270m"]
    finally:
        stop_server(srv)


def _swap_data(home: Path) -> None:
    """Point NOTES' manifest at another valid JSONL file while its config (and seal) still describe the old."""
    other = home.parent / "other.jsonl"
    other.write_text('{"text": "not the sealed notes"}\n')
    store = open_store(home)
    try:
        name = names.parse(NOTES)
        manifest = store.resolve(name).manifest
        blob = store.blobs.put_file(other)
        first = manifest.data_layers()[0]
        layers = tuple(Layer(x.media_type, blob.digest, blob.size, x.annotations) if x == first else x
                       for x in manifest.layers)
        store.tag(name, Manifest(manifest.config, layers))
        assert first.media_type == mt.DATA_JSONL
    finally:
        store.close()


def test_data_that_does_not_match_is_refused(zoo_a: dict[str, object], model_home: Path, tmp_path: Path) -> None:
    home = clone_home(zoo_a["home"], tmp_path / "a")  # type: ignore[arg-type]
    _swap_data(home)
    verify = oz(home, "verify", NOTES)
    assert verify.returncode == 1 and "FAIL" in verify.stdout, out(verify)
    srv = start_server(home, tmp_path / "tampered.log")
    try:
        home_b = tmp_path / "b"
        ok(oz(home_b, "keys", "trust", "zoo-a", str(zoo_a["pub"])))
        for extra in ([], ["--insecure"]):
            pull = oz(home_b, "pull", *extra, f"{srv.host}/{NOTES}")
            assert pull.returncode == 1 and "does not match the dataset config" in pull.stderr, out(pull)
        assert ok(oz(home_b, "dataset", "list")).stdout.strip().count("\n") == 0
        assert not [p for p in (home_b / "blobs").iterdir() if p.name.startswith("sha256-")]
    finally:
        stop_server(srv)
    receiver = start_server(clone_home(model_home, tmp_path / "c"), tmp_path / "c.log", {"OPENZOO_API_KEY": "k"})
    try:
        push = oz(home, "push", NOTES, "--to", f"{receiver.host}/{NOTES}", env={"OPENZOO_REMOTE_API_KEY": "k"})
        assert push.returncode == 1 and "does not match the dataset config" in push.stderr, out(push)
        missing = httpx.get(f"{receiver.url}/zoo/datasets/{NOTES}", headers={"Authorization": "Bearer k"}, timeout=30)
        assert missing.status_code == 404
    finally:
        stop_server(receiver)


def test_dataset_travels_through_an_oci_registry(zoo_a: dict[str, object], oci_registry: Registry,  # noqa: F811
                                                tmp_path: Path) -> None:
    """A sealed dataset pushed to a real docker-registry and pulled into a zoo that pins A's key: its rows are
    re-read, its seal verified offline, and it arrives with the same digests."""
    home = zoo_a["home"]
    assert isinstance(home, Path)
    ref = f"oci://{oci_registry.host}/me/scores:v1"
    ok(oz(home, "push", SCORES, ref))
    home_b = tmp_path / "b"
    ok(oz(home_b, "keys", "trust", "zoo-a", str(zoo_a["pub"])))
    pull = ok(oz(home_b, "pull", ref))
    assert "checking every row of" in pull.stderr and "verified against zoo-a" in pull.stderr, out(pull)
    assert f"verified: {SCORES} is certified by zoo-a" in ok(oz(home_b, "verify", SCORES)).stdout
    theirs = json.loads(ok(oz(home, "dataset", "show", SCORES, "--json")).stdout)
    mine = json.loads(ok(oz(home_b, "dataset", "show", SCORES, "--json")).stdout)
    assert (mine["digest"], mine["data_digest"], mine["rows"]) == (theirs["digest"], theirs["data_digest"], 25)
    assert ok(oz(home_b, "list")).stdout.strip() == "NAME    ID    SIZE    MODIFIED"


def test_dataset_that_does_not_match_is_refused_from_an_oci_registry(
        zoo_a: dict[str, object], oci_registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    home = clone_home(zoo_a["home"], tmp_path / "a")  # type: ignore[arg-type]
    _swap_data(home)
    ref = f"oci://{oci_registry.host}/me/swapped:v1"
    ok(oz(home, "push", NOTES, ref))
    home_b = tmp_path / "b"
    ok(oz(home_b, "keys", "trust", "zoo-a", str(zoo_a["pub"])))
    refused = oz(home_b, "pull", ref)  # the seal no longer matches: refused before anything is downloaded
    assert refused.returncode == 1 and "file digests differ from the seal" in refused.stderr, out(refused)
    pull = oz(home_b, "pull", "--insecure", ref)  # --insecure waives the seal, never the rows
    assert pull.returncode == 1 and "does not match the dataset config" in pull.stderr, out(pull)
    assert ok(oz(home_b, "dataset", "list")).stdout.strip().count("\n") == 0
    assert not [p for p in (home_b / "blobs").iterdir() if p.name.startswith("sha256-")]


def test_bad_input_is_refused_and_nothing_stored(tmp_path: Path, data: dict[str, Path]) -> None:
    home = tmp_path / "home"
    ok(oz(home, "dataset", "import", str(data["labels.csv"]), "--name", "me/keep"))
    before = sorted(os.listdir(home / "blobs"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": oops}\n')
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    typed = tmp_path / "typed.jsonl"
    typed.write_text('{"n": 1}\n{"n": "one"}\n')
    fake = tmp_path / "fake.parquet"
    fake.write_text("text\nnot parquet\n")
    cases = [
        ([str(bad), "--name", "me/bad"], {}, "bad.jsonl:2: not valid JSON"),
        ([str(ragged), "--name", "me/bad"], {}, "ragged.csv:3: 1 fields, but the header has 2"),
        ([str(typed), "--name", "me/bad"], {}, 'typed.jsonl:2: column "n" is string here but integer'),
        ([str(fake), "--name", "me/bad"], {}, "not a Parquet file"),
        ([str(data["notes.jsonl"]), "--name", "me/big"], {"OPENZOO_DATASET_MAX_BYTES": "1000"},
         "OPENZOO_DATASET_MAX_BYTES"),
        ([str(data["notes.jsonl"]), "--name", "../../etc/passwd"], {}, "invalid model name"),
        ([str(data["notes.jsonl"]), "--name", "me/x", "--license", "free-ish"], {}, "unknown license"),
    ]
    for args, env, words in cases:
        result = oz(home, "dataset", "import", *args, env=env)
        assert result.returncode == 1 and words in result.stderr, out(result)
        error = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(error) == 1 and "Traceback" not in result.stderr
        assert sorted(os.listdir(home / "blobs")) == before
    listed = ok(oz(home, "dataset", "list")).stdout.splitlines()
    assert [line.split()[0] for line in listed[1:]] == ["me/keep:latest"]
