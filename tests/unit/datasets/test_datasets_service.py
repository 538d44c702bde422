"""Datasets in the store: import (three formats, folders), content addressing, apartness from models, bad input
leaving the store unchanged, manifest checks for pulls and pushes, certification, the API, lineage walks and
the audit's bundled data."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from openzoo import config
from openzoo.app import create_app
from openzoo.audit import datasets as audit_data
from openzoo.audit.report import Report
from openzoo.audit.service import bundled_dataset_name, store_bundled_datasets
from openzoo.audit.suites.base import SuiteResult
from openzoo.datasets.service import check_manifest
from openzoo.errors import (
    Conflict,
    DatasetNotFound,
    DataTooLarge,
    DataTypeMismatch,
    DigestMismatch,
    InvalidData,
    InvalidName,
    InvalidRequest,
    MalformedData,
    NotSupported,
    OpenzooError,
    UnknownLicense,
)
from openzoo.finetune.lineage import SCHEMA, walk_lineage
from openzoo.formats.scan import scan_data_file
from openzoo.services import Services
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest

BASE = "http://127.0.0.1"


@pytest.fixture
def services(home: Path) -> Iterator[Services]:
    s = Services(config.load({"OPENZOO_HOME": str(home), "OPENZOO_DATASET_MAX_BYTES": "400000"}))
    yield s
    s.close()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "notes.jsonl").write_text("".join(json.dumps({"text": f"Tapir {i} swims."}) + "\n" for i in range(4)))
    (folder / "labels.csv").write_text("text,label\nfine,1\nbad,0\n")
    pq.write_table(pa.table({"text": ["a", "b", "c"], "score": [0.1, 0.2, 0.3]}), folder / "scores.parquet")
    return {p.name: p for p in folder.iterdir()}


def run(events: Iterator[Any]) -> Any:
    return list(events)[-1]


def snapshot(services: Services) -> tuple[list[str], list[str]]:
    """Every file under blobs/ (temp files included) and every catalog name."""
    return (sorted(os.listdir(services.store.home / "blobs")),
            [e.display for e in services.store.catalog.entries()])


def test_import_three_formats_list_and_show(services: Services, files: dict[str, Path]) -> None:
    for filename, name in (("notes.jsonl", "me/notes:v1"), ("labels.csv", "me/labels:v1"),
                           ("scores.parquet", "me/scores:v1")):
        done = run(services.datasets.import_files([files[filename]], name, license="CC-BY-4.0"))
        assert done.status == "success" and done.digest.startswith("sha256:")
    found = {d.display: d for d in services.datasets.list_datasets()}
    assert sorted(found) == ["me/labels:v1", "me/notes:v1", "me/scores:v1"]
    assert [found[n].config.rows for n in ("me/notes:v1", "me/labels:v1", "me/scores:v1")] == [4, 2, 3]
    notes = found["me/notes:v1"]
    assert notes.manifest.kind == "dataset" and notes.config.format == "jsonl"
    assert notes.config.data_digest == notes.config.files[0].digest  # one file: the file's own digest
    assert [layer.media_type for layer in notes.manifest.layers] == [mt.DATA_JSONL, mt.DATASHEET, mt.LICENSE_FACTS]
    config_json = json.loads(services.store.blobs.read(notes.manifest.config.digest))
    assert config_json["schema"] == "openzoo.dataset/v1" and config_json["license"] == "CC-BY-4.0"
    assert [row for _, _, row in services.datasets.rows(found["me/labels:v1"])] == [
        {"text": "fine", "label": "1"}, {"text": "bad", "label": "0"}]
    assert services.models.list_models() == []  # datasets are never listed as models


def test_same_file_twice_is_one_blob(services: Services, files: dict[str, Path]) -> None:
    run(services.datasets.import_files([files["notes.jsonl"]], "me/a:1"))
    blobs = set(services.store.blobs.digests())
    run(services.datasets.import_files([files["notes.jsonl"]], "me/b:1"))
    digest = services.datasets.get("me/b:1").config.data_digest
    assert digest == services.datasets.get("me/a:1").config.data_digest
    assert digest in blobs and services.store.catalog.blob_refcount(digest) == 2
    again = run(services.datasets.import_files([files["notes.jsonl"]], "me/a:1"))  # the same import: no change
    assert again.digest == services.datasets.get("me/a:1").digest


def test_folder_with_readme_imports_nested_files(services: Services, tmp_path: Path, files: dict[str, Path]) -> None:
    folder = tmp_path / "hf"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.jsonl").write_bytes(files["notes.jsonl"].read_bytes())
    (folder / "data" / "test.csv").write_bytes(files["labels.csv"].read_bytes())
    (folder / ".git").mkdir()
    (folder / ".git" / "junk.csv").write_text("nope")
    (folder / "README.md").write_text("---\nlicense: cdla-permissive-2.0\npretty_name: Tapirs\n---\n\n"
                                      "## Motivation\nTests.\n")
    run(services.datasets.import_files([folder], "me/hf:v1"))
    found = services.datasets.get("me/hf:v1")
    assert [f.name for f in found.config.files] == ["data/test.csv", "data/train.jsonl"]
    assert found.config.license == "CDLA-Permissive-2.0" and found.config.format == "mixed"
    sheet = services.datasets.datasheet("me/hf:v1")
    assert sheet.metadata["pretty_name"] == "Tapirs" and "Tests." in sheet.body


def test_bad_input_stores_nothing(services: Services, files: dict[str, Path], tmp_path: Path,
                                  tiny_gguf: Path) -> None:
    run(services.models.import_gguf(tiny_gguf, "me/model"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"text": 2}\n')
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"text": "x" * 500_000}) + "\n")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    before = snapshot(services)
    cases: list[tuple[list[Path], str, dict[str, str], type[OpenzooError], str]] = [
        ([bad], "me/bad", {}, DataTypeMismatch, 'bad.jsonl:2: column "text"'),
        ([files["notes.jsonl"], broken], "me/bad", {}, MalformedData, "broken.parquet"),
        ([big], "me/big", {}, DataTooLarge, "OPENZOO_DATASET_MAX_BYTES"),
        ([files["notes.jsonl"]], "../../etc/x", {}, InvalidName, "invalid model name"),
        ([files["notes.jsonl"]], "me/x", {"license": "GPL-ish"}, UnknownLicense, "unknown license"),
        ([files["notes.jsonl"]], "me/x", {"license": "MIT", "datasheet": "---\nlicense: cc-by-4.0\n---\n"},
         InvalidRequest, "declares license CC-BY-4.0"),
        ([files["notes.jsonl"]], "me/x", {"datasheet": "---\nlicense: [unclosed\n---\n"}, InvalidRequest,
         "not valid YAML"),
        ([files["notes.jsonl"]], "me/model", {}, Conflict, "is a model"),
        ([tmp_path / "missing.csv"], "me/x", {}, OpenzooError, "no such file"),
    ]
    for paths, name, extra, error, words in cases:
        with pytest.raises(error, match=words):
            run(services.datasets.import_files(paths, name, **extra))
        assert snapshot(services) == before, name


def test_a_file_changed_after_checking_is_refused(services: Services, files: dict[str, Path]) -> None:
    before = snapshot(services)
    plan = services.datasets.plan([files["labels.csv"], files["notes.jsonl"]], "me/x")
    files["notes.jsonl"].write_text('{"text": "changed"}\n')
    with pytest.raises(DigestMismatch):
        run(services.datasets.commit(plan))
    assert snapshot(services) == before


def test_models_and_datasets_stay_apart(services: Services, files: dict[str, Path], tiny_gguf: Path) -> None:
    run(services.models.import_gguf(tiny_gguf, "me/model"))
    run(services.datasets.import_files([files["labels.csv"]], "me/data"))
    assert [m.name for m in services.models.list_models()] == ["me/model:latest"]
    for call in (services.models.resolve, services.models.delete):
        with pytest.raises(NotSupported, match="is a dataset, not a model"):
            call("me/data")
    with pytest.raises(NotSupported, match="is a model, not a dataset"):
        services.datasets.get("me/model")
    with pytest.raises(DatasetNotFound):
        services.datasets.get("me/nothing")
    with pytest.raises(Conflict, match='"me/data:latest" is a dataset; a model needs a name of its own'):
        run(services.models.import_gguf(tiny_gguf, "me/data"))  # a name keeps its kind
    assert services.datasets.get("me/data").config.rows == 2
    client = TestClient(create_app(services, close_on_shutdown=False), base_url=BASE)
    assert [m["name"] for m in client.get("/api/tags").json()["models"]] == ["me/model:latest"]
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["me/model:latest"]
    generate = client.post("/api/generate", json={"model": "me/data", "prompt": "hi", "stream": False})
    assert generate.status_code == 400 and "is a dataset" in generate.json()["error"]
    chat = client.post("/v1/chat/completions", json={"model": "me/data", "messages": [{"role": "user",
                                                                                        "content": "hi"}]})
    assert chat.status_code == 400
    services.datasets.delete("me/data")
    assert services.datasets.list_datasets() == []


def test_check_manifest_refuses_data_that_does_not_match(services: Services, files: dict[str, Path],
                                                         tmp_path: Path) -> None:
    run(services.datasets.import_files([files["notes.jsonl"]], "me/notes"))
    found = services.datasets.get("me/notes")
    assert check_manifest(services.store, found.manifest) == found.config
    shorter = tmp_path / "notes.jsonl"
    shorter.write_text('{"text": "only one"}\n')
    blob = services.store.blobs.put_file(shorter)
    data = found.manifest.data_layers()[0]
    swapped = Manifest(found.manifest.config, (Layer(data.media_type, blob.digest, blob.size, data.annotations),
                                               *found.manifest.layers[1:]))
    with pytest.raises(InvalidData, match="does not match the dataset config"):
        check_manifest(services.store, swapped)
    traversal = Manifest(found.manifest.config, (Layer(data.media_type, data.digest, data.size,
                                                       {"org.openzoo.filename": "../../notes.jsonl"}),
                                                 *found.manifest.layers[1:]))
    with pytest.raises(InvalidData, match="invalid data file name"):
        check_manifest(services.store, traversal)


def test_certify_seal_and_verify_a_dataset(services: Services, files: dict[str, Path]) -> None:
    run(services.datasets.import_files([files["scores.parquet"]], "me/scores", license="CDLA-Permissive-2.0"))
    cert = services.certification
    for reviewer in ("alice", "bob"):
        cert.generate_key(reviewer)
    cert.set_policy(["alice", "bob"], 2)
    req = cert.request("me/scores")
    assert req.status == "open" and req.evidence["license"]["id"] == "CDLA-Permissive-2.0"
    assert "datasheet question 'Motivation' is not answered" in req.evidence["card"]["problems"]
    assert req.evidence["scan"]["files"] == ["scores.parquet"] and not req.evidence["scan"]["blocked"]
    datasets = next(c for c in req.evidence["openness"]["components"] if c["name"] == "Datasets")
    assert datasets["verdict"] == "included" and datasets["evidence"] == [
        services.datasets.get("me/scores").config.data_digest]
    cert.approve("me/scores", "alice")
    result, seal = cert.approve("me/scores", "bob")
    assert seal is not None and result.met
    verdict = cert.verify("me/scores")
    assert verdict.ok, verdict.to_json()
    sealed = services.datasets.get("me/scores")
    assert sealed.sealed and services.models.list_models() == []
    # the manifest before the seal is kept in history, so lineage digests made before still resolve
    assert [d.display for d in services.datasets.by_digest(req.manifest_digest)] == ["me/scores:latest"]
    data = sealed.manifest.data_layers()[0]
    path = services.store.blobs.path(data.digest)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-1] + b"X")
    failed = cert.verify("me/scores")
    assert not failed.ok and any("data blob" in c.reason for c in failed.failed())


def test_datasheet_replacement_keeps_the_license(services: Services, files: dict[str, Path]) -> None:
    from openzoo.facts.card import parse_card

    run(services.datasets.import_files([files["labels.csv"]], "me/labels", license="CC-BY-4.0"))
    cert = services.certification
    cert.set_card("me/labels", parse_card("## Motivation\nLabels for tests.\n"))
    found = services.datasets.get("me/labels")
    assert found.manifest.first(mt.CARD) is None
    assert "Labels for tests." in services.datasets.datasheet("me/labels").body
    assert services.datasets.datasheet("me/labels").metadata["license"] == "cc-by-4.0"
    with pytest.raises(InvalidRequest, match="declares license MIT"):
        cert.set_card("me/labels", parse_card("---\nlicense: mit\n---\nx\n"))


def test_scan_flags_executable_content(tmp_path: Path) -> None:
    pickle = tmp_path / "rows.jsonl"
    pickle.write_bytes(b"\x80\x04\x95\x00")
    findings = scan_data_file(pickle, "rows.jsonl", list)
    assert [(f.severity, f.code) for f in findings] == [("critical", "data-executable")]

    def broken() -> list[tuple[str, str]]:
        raise MalformedData("rows.csv:3: 1 fields, but the header has 2")

    assert scan_data_file(tmp_path / "rows.jsonl", "rows.csv", broken)[0].code == "data-executable"
    text = tmp_path / "rows.csv"
    text.write_text("a\n1\n")
    assert scan_data_file(text, "rows.csv", broken)[0].code == "data-parse"
    assert [f.code for f in scan_data_file(text, "rows.csv", lambda: [("blob", "binary")])] == [
        "data-ok", "data-binary-column"]


def test_api_imports_lists_and_removes(services: Services, files: dict[str, Path]) -> None:
    client = TestClient(create_app(services, close_on_shutdown=False), base_url=BASE)
    data = files["labels.csv"].read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code == 201
    before = snapshot(services)
    bad = client.post("/zoo/datasets", json={"name": "me/api", "files": {"../labels.csv": digest}})
    assert bad.status_code == 400 and "invalid data file name" in bad.json()["error"]
    missing = client.post("/zoo/datasets", json={"name": "me/api", "files": {"x.csv": "sha256:" + "0" * 64}})
    assert missing.status_code == 404
    wrong = client.post("/zoo/datasets", json={"name": "me/api", "files": {"labels.jsonl": digest}})
    assert wrong.status_code == 400 and wrong.json()["error"].startswith("labels.jsonl:1:")
    assert snapshot(services) == before
    made = client.post("/zoo/datasets", json={"name": "me/api", "files": {"labels.csv": digest},
                                              "license": "ODC-By-1.0"})
    assert made.status_code == 201, made.text
    assert made.json()["rows"] == 2 and made.json()["data_digest"] == digest
    listed = client.get("/zoo/datasets").json()["datasets"]
    assert [(d["name"], d["rows"], d["license"]) for d in listed] == [("me/api:latest", 2, "ODC-By-1.0")]
    card = client.get("/zoo/datasets/me/api/card").json()
    assert card["metadata"]["license"] == "odc-by" and card["problems"]
    assert client.get("/zoo/datasets/me/api").json()["data_digest"] == digest
    assert client.delete("/zoo/datasets/me/api").json() == {"deleted": "me/api:latest"}
    assert client.get("/zoo/datasets/me/api").status_code == 404


def test_lineage_walk_resolves_datasets_and_the_base(services: Services, files: dict[str, Path],
                                                     tiny_gguf: Path) -> None:
    run(services.models.import_gguf(tiny_gguf, "me/base"))
    run(services.datasets.import_files([files["notes.jsonl"]], "me/notes", license="CC-BY-4.0"))
    base, notes = services.models.resolve("me/base"), services.datasets.get("me/notes")
    record = {"schema": SCHEMA, "kind": "lora",
              "base": {"name": "me/base:latest", "manifest_digest": base.digest},
              "adapter": {"digest": "sha256:" + "c" * 64, "format": "gguf-lora"},
              "data": [{"file": "notes.jsonl", "digest": notes.config.data_digest, "records": 4, "kind": "text",
                        "dataset": "me/notes:latest", "manifest_digest": notes.digest,
                        "data_digest": notes.config.data_digest},
                       {"file": "gone.jsonl", "digest": "sha256:" + "d" * 64, "dataset": "other/gone:1",
                        "manifest_digest": "sha256:" + "e" * 64, "data_digest": "sha256:" + "d" * 64}]}
    services.models.copy("me/base", "me/tuned")
    services.models.update_layers("me/tuned", mt.LINEAGE,
                                  [services.models.add_blob_layer(mt.LINEAGE, mt.canonical_json(record))])
    services.models.update_layers("me/base", mt.CARD, [services.models.add_blob_layer(mt.CARD, b"# a card\n")])
    text = walk_lineage(services.models, services.datasets, "me/tuned")
    lines = text.splitlines()
    assert lines[0] == "  Lineage of me/tuned:latest"
    assert any(line.strip().startswith("adapter   LoRA (gguf-lora)") for line in lines)
    dataset_lines = [line for line in lines if line.strip().startswith("dataset")]
    assert "me/notes:latest (4 rows, CC-BY-4.0, not sealed)" in dataset_lines[0]
    assert "other/gone:1 (not stored here)" in dataset_lines[1]
    base_line = next(line for line in lines if line.strip().startswith("base"))
    assert "stored as me/base:latest" in base_line  # found through the history after the card edit


def test_bundled_audit_data_becomes_datasets_once(services: Services) -> None:
    suites = {}
    for suite, names in (("bias", ("bias_pairs.jsonl", "bias_bbq.jsonl", "bias_occupations.jsonl")),
                         ("quality", ("quality_corpus.txt", "quality_mc.jsonl")),
                         ("safety", ("safety_prompts.jsonl",))):
        read = [audit_data.bundled(n) for n in names]
        suites[suite] = SuiteResult(suite, {}, [], audit_data.combined_digest(read), {f.name: f.digest for f in read})
    report = Report("m", "sha256:" + "a" * 64, {}, 0, suites)
    stored = store_bundled_datasets(services, report)
    assert stored == [bundled_dataset_name(s, r.data_digest) for s, r in sorted(suites.items())]
    for suite, result in suites.items():
        found = services.datasets.get(bundled_dataset_name(suite, result.data_digest))
        assert found.config.data_digest == result.data_digest and found.config.license == "CC-BY-4.0"
        assert sorted(f.name for f in found.config.files) == sorted(result.data_files)
    sheet = services.datasets.datasheet(bundled_dataset_name("bias", suites["bias"].data_digest))
    assert "Datasheet: `bias_bbq.jsonl`" in sheet.body and sheet.metadata["license"] == "cc-by-4.0"
    assert store_bundled_datasets(services, report) == []
