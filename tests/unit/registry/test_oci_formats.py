"""The OCI model formats (issue 16): what each writer builds from a stored model, that a ModelPack config
validates against the spec's own JSON schema (vendored under data/modelpack with its Apache-2.0 notice),
that every format is recognised and planned back, and that bad configs and unknown layers are refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from openzoo.errors import InvalidRequest, NotSupported
from openzoo.facts.canonical import sha256_digest
from openzoo.registry.oci import formats
from openzoo.registry.oci.artifacts import OCI_MANIFEST, Descriptor, OciManifest
from openzoo.registry.oci.formats import docker, kitops, modelpack, ollama
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest

SCHEMA = json.loads((Path(__file__).parent / "data" / "modelpack" / "config-schema.json").read_text())


def digest(text: str) -> str:
    return sha256_digest(text.encode())


WEIGHTS = Layer(mt.MODEL, digest("weights"), 4096)
LICENSE = Layer(mt.LICENSE, digest("license"), 7, {"org.openzoo.license.id": "Apache-2.0"})
TEMPLATE = Layer(mt.TEMPLATE, digest("template"), 8)
PARAMS = Layer(mt.PARAMS, digest("params"), 6)
CARD = Layer(mt.CARD, digest("card"), 4)
CONFIG = {"model_format": "gguf", "model_family": "gemma3", "model_families": ["gemma3"], "model_type": "268.10M",
          "file_type": "Q4_K_M", "architecture": "gemma3", "context_length": 32768,
          "capabilities": ["completion", "embedding"]}
MODEL = formats.ModelContent(
    name="tiny", tag="v1", manifest=Manifest(Layer(mt.CONFIG_MEDIA_TYPE, digest("config"), 100),
                                             (WEIGHTS, LICENSE, TEMPLATE, PARAMS, CARD)),
    config=CONFIG, created=datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC))


def config_of(built: formats.Built) -> dict[str, Any]:
    data = built.payloads[built.manifest.config.digest]
    assert sha256_digest(data) == built.manifest.config.digest and len(data) == built.manifest.config.size
    value: dict[str, Any] = json.loads(data)
    return value


def test_modelpack_manifest_and_config_follow_the_spec() -> None:
    built = formats.build("modelpack", MODEL)
    oci = built.manifest
    assert oci.media_type == OCI_MANIFEST and oci.artifact_type == "application/vnd.cncf.model.manifest.v1+json"
    assert oci.config.media_type == "application/vnd.cncf.model.config.v1+json"
    config = config_of(built)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(config)
    assert list(config) == ["descriptor", "modelfs", "config"]  # model-runner's (Go struct) order
    assert config["descriptor"] == {"createdAt": "2026-12-07T01:02:03Z", "family": "gemma3", "name": "tiny",
                                    "version": "v1", "licenses": ["Apache-2.0"]}
    assert config["config"] == {"architecture": "gemma3", "format": "gguf", "paramSize": "268.10M",
                                "quantization": "Q4_K_M",
                                "capabilities": {"inputTypes": ["text"], "outputTypes": ["text", "embedding"]}}
    assert config["modelfs"] == {"type": "layers", "diffIds": [x.digest for x in oci.layers]}
    by_path = {x.annotations["org.cncf.model.filepath"]: x for x in oci.layers}
    assert by_path["tiny.gguf"].media_type == "application/vnd.cncf.model.weight.v1.raw"
    assert by_path["tiny.gguf"].digest == WEIGHTS.digest and by_path["tiny.gguf"].size == WEIGHTS.size
    assert by_path["README.md"].media_type == by_path["LICENSE"].media_type == "application/vnd.cncf.model.doc.v1.raw"
    assert by_path["ollama/template"].media_type == "application/vnd.cncf.model.weight.config.v1.raw"
    meta = json.loads(by_path["tiny.gguf"].annotations["org.cncf.model.file.metadata+json"])
    assert meta == {"name": "tiny.gguf", "mode": 0o644, "uid": 0, "gid": 0, "size": 4096,
                    "mtime": "2026-12-07T01:02:03Z", "typeflag": 0}
    assert formats.build("modelpack", MODEL).manifest.to_bytes() == oci.to_bytes()  # deterministic


def test_a_dataset_pushed_as_modelpack_is_schema_valid_with_dataset_layers() -> None:
    data = Layer(mt.DATA_JSONL, digest("rows"), 10, {"org.openzoo.filename": "train.jsonl"})
    sheet = Layer(mt.DATASHEET, digest("sheet"), 5)
    dataset = formats.ModelContent(name="ds", tag="v1", config={},
                                   manifest=Manifest(Layer(mt.DATASET_CONFIG, digest("c"), 3), (data, sheet)))
    built = formats.build("modelpack", dataset)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(config_of(built))
    assert [(x.media_type, x.annotations["org.cncf.model.filepath"]) for x in built.manifest.layers] == [
        ("application/vnd.cncf.model.dataset.v1.raw", "data/train.jsonl"),
        ("application/vnd.cncf.model.doc.v1.raw", "README.md")]


def test_docker_model_runner_format() -> None:
    built = formats.build("docker", MODEL)
    oci = built.manifest
    assert oci.config.media_type == "application/vnd.docker.ai.model.config.v0.2+json"
    assert [(x.media_type, x.digest) for x in oci.layers] == [
        ("application/vnd.docker.ai.gguf.v3", WEIGHTS.digest), ("application/vnd.docker.ai.license", LICENSE.digest),
        ("application/vnd.docker.ai.model.file", CARD.digest)]
    config = config_of(built)
    assert list(config) == ["config", "descriptor", "rootfs"]
    assert config["config"]["format"] == "gguf" and config["config"]["quantization"] == "Q4_K_M"
    assert config["config"]["context_size"] == 32768 and config["descriptor"] == {"created": "2026-12-07T01:02:03Z"}
    assert config["rootfs"] == {"type": "rootfs", "diff_ids": [x.digest for x in oci.layers]}


def test_ollama_format_is_what_ollama_create_writes() -> None:
    built = formats.build("ollama", MODEL)
    oci = built.manifest
    assert oci.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert oci.config.media_type == "application/vnd.docker.container.image.v1+json"
    data = built.payloads[oci.config.digest]
    assert data == (b'{"model_format":"gguf","model_family":"gemma3","model_families":["gemma3"],'
                    b'"model_type":"268.10M","file_type":"Q4_K_M","architecture":"amd64","os":"linux"}\n')
    assert [x.media_type for x in oci.layers] == [mt.MODEL, mt.LICENSE, mt.TEMPLATE, mt.PARAMS]  # no card
    assert all(not x.annotations for x in oci.layers)


@pytest.mark.parametrize("fmt", ["modelpack", "docker", "ollama", "openzoo"])
def test_every_written_format_is_recognised_and_planned_back(fmt: str) -> None:
    built = formats.build(fmt, MODEL)
    assert formats.recognise(built.manifest, "here") == fmt
    plan = formats.plan(fmt, built.manifest, built.payloads.get(built.manifest.config.digest, b"{}"), "here")
    kinds = {t.desc.digest: t.media_type for t in plan.takes}
    assert kinds[WEIGHTS.digest] == mt.MODEL and kinds[LICENSE.digest] == mt.LICENSE
    if fmt in ("modelpack", "ollama", "openzoo"):
        assert kinds[TEMPLATE.digest] == mt.TEMPLATE and kinds[PARAMS.digest] == mt.PARAMS
    assert (plan.config is not None) == (fmt == "openzoo")


# -- artifacts as other tools write them, byte for byte --------------------------------------------------

RUNNER_CNCF_CONFIG = (  # docker model package --format cncf: json.Marshal(modelpack.Model), Go field order
    b'{"descriptor":{"createdAt":"2025-11-20T10:00:00Z","family":"gemma3"},'
    b'"modelfs":{"type":"layers","diffIds":["sha256:' + b"a" * 64 + b'"]},'
    b'"config":{"architecture":"gemma3","format":"gguf","paramSize":"268.10 M","quantization":"Q4_K_M"}}')
MODCTL_CONFIG = (  # modctl build: descriptor with name/licenses, tar layers
    b'{"descriptor":{"createdAt":"2025-11-20T10:00:00.123456789+08:00","family":"gemma3","name":"tiny",'
    b'"version":"v1","licenses":["Apache-2.0"],"authors":["someone"],"description":"a tiny model"},'
    b'"modelfs":{"type":"layers","diffIds":["sha256:' + b"b" * 64 + b'"]},"config":{"format":"gguf"}}')


def desc(media_type: str, text: str, **annotations: str) -> Descriptor:
    return Descriptor(media_type, digest(text), len(text), annotations)


def test_modelpack_as_model_runner_and_modctl_write_it_validates_and_plans() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    for config in (RUNNER_CNCF_CONFIG, MODCTL_CONFIG):
        validator.validate(json.loads(config))
    runner = OciManifest(Descriptor.of(modelpack.CONFIG, RUNNER_CNCF_CONFIG),
                         (desc(modelpack.WEIGHT_RAW, "w", **{"org.cncf.model.filepath": "model.gguf"}),
                          desc(modelpack.DOC_RAW, "l", **{"org.cncf.model.filepath": "LICENSE"})),
                         artifact_type=modelpack.ARTIFACT_TYPE)
    plan = formats.plan(formats.recognise(runner, "r"), runner, RUNNER_CNCF_CONFIG, "r")
    assert [(t.media_type, t.member) for t in plan.takes] == [(mt.MODEL, None), (mt.LICENSE, None)]
    modctl = OciManifest(Descriptor.of(modelpack.CONFIG, MODCTL_CONFIG),
                         (desc("application/vnd.cncf.model.weight.v1.tar", "t",
                               **{"org.cncf.model.filepath": "tiny.gguf"}),
                          desc("application/vnd.cncf.model.code.v1.tar", "c", **{"org.cncf.model.filepath": "x.py"})),
                         artifact_type=modelpack.ARTIFACT_TYPE)
    plan = formats.plan("modelpack", modctl, MODCTL_CONFIG, "m")
    assert [(t.media_type, t.member) for t in plan.takes] == [(mt.MODEL, "tiny.gguf")]
    assert plan.skipped == ("code file x.py",)
    assert plan.facts["license_id"] == "Apache-2.0" and plan.facts["authors"] == ["someone"]
    assert plan.facts["description"] == "a tiny model" and plan.facts["name"] == "tiny"


def test_kitops_modelkit_plans_its_model_layer() -> None:
    kitfile = (b'{"manifestVersion":"1.0.0","package":{"name":"tiny","version":"1.0","license":"MIT",'
               b'"authors":["kit"]},"model":{"name":"tiny","path":"models/tiny.gguf"},'
               b'"docs":[{"path":"README.md"}]}')
    oci = OciManifest(Descriptor.of(kitops.CONFIG, kitfile),
                      (desc("application/vnd.kitops.modelkit.model.v1.tar", "m"),
                       desc("application/vnd.kitops.modelkit.docs.v1.tar", "d")),
                      annotations={"ml.kitops.modelkit.cli-version": "1.10.0"})
    assert formats.recognise(oci, "k") == "kitops"
    plan = formats.plan("kitops", oci, kitfile, "k")
    assert [(t.media_type, t.member) for t in plan.takes] == [(mt.MODEL, "models/tiny.gguf")]
    assert plan.facts["license_id"] == "MIT" and len(plan.skipped) == 1


# -- refusals --------------------------------------------------------------------------------------------


def test_unknown_media_types_are_refused_in_every_format() -> None:
    evil = desc("application/x-evil", "e")
    cases = [
        ("modelpack", OciManifest(Descriptor.of(modelpack.CONFIG, RUNNER_CNCF_CONFIG), (evil,)), RUNNER_CNCF_CONFIG),
        ("docker", OciManifest(Descriptor.of(docker.CONFIG_V02, b'{"config":{}}'), (evil,)), b'{"config":{}}'),
        ("ollama", OciManifest(Descriptor.of(mt.CONFIG_MEDIA_TYPE, b"{}"), (evil,), mt.MANIFEST_MEDIA_TYPE), b"{}"),
        ("openzoo", OciManifest(Descriptor.of(mt.CONFIG_MEDIA_TYPE, b"{}"), (evil,)), b"{}"),
        ("kitops", OciManifest(Descriptor.of(kitops.CONFIG, b'{"model":{"path":"m"}}'), (evil,)),
         b'{"model":{"path":"m"}}'),
    ]
    for fmt, oci, config in cases:
        with pytest.raises(NotSupported, match="unknown media type 'application/x-evil'"):
            formats.plan(fmt, oci, config, "there")


def test_a_typed_modelpack_weight_of_unknown_kind_is_refused() -> None:
    oci = OciManifest(Descriptor.of(modelpack.CONFIG, RUNNER_CNCF_CONFIG),
                      (desc("application/vnd.cncf.model.weight.v1.exe", "w"),))
    with pytest.raises(NotSupported, match="unknown media type"):
        formats.plan("modelpack", oci, RUNNER_CNCF_CONFIG, "there")


@pytest.mark.parametrize("config", [b"not json", b"[1]", b'{"descriptor":[]}',
                                    b'{"modelfs":{"diffIds":"x"}}', b'{"config":{"format":7}}'])
def test_malformed_modelpack_configs_are_refused(config: bytes) -> None:
    oci = OciManifest(Descriptor.of(modelpack.CONFIG, config), (desc(modelpack.WEIGHT_RAW, "w"),))
    with pytest.raises(InvalidRequest, match="malformed ModelPack config"):
        formats.plan("modelpack", oci, config, "there")


def test_other_formats_and_versions_are_refused_clearly() -> None:
    safetensors = OciManifest(Descriptor.of(modelpack.CONFIG, b'{"config":{"format":"safetensors"}}'),
                              (desc(modelpack.WEIGHT_RAW, "w"),))
    with pytest.raises(NotSupported, match="safetensors format; openzoo runs GGUF"):
        formats.plan("modelpack", safetensors, b'{"config":{"format":"safetensors"}}', "x")
    future = OciManifest(Descriptor.of("application/vnd.docker.ai.model.config.v0.3+json", b"{}"),
                         (desc(docker.GGUF, "w"),))
    assert formats.recognise(future, "x") == "docker"
    with pytest.raises(NotSupported, match=r"openzoo reads v0\.1 and v0\.2"):
        formats.plan("docker", future, b"{}", "x")
    projector = OciManifest(Descriptor.of(mt.CONFIG_MEDIA_TYPE, b"{}"),
                            (desc(mt.MODEL, "w"), desc("application/vnd.ollama.image.projector", "p")),
                            mt.MANIFEST_MEDIA_TYPE)
    assert formats.recognise(projector, "x") == "ollama"
    with pytest.raises(NotSupported, match="projector"):
        formats.plan("ollama", projector, b"{}", "x")
    with pytest.raises(NotSupported, match="not a model artifact openzoo reads"):
        formats.recognise(OciManifest(Descriptor.of("application/x-thing", b"{}"), (desc("application/x-w", "w"),)),
                          "x")
    oras = OciManifest(Descriptor.of("application/vnd.oci.empty.v1+json", b"{}"), (desc(mt.MODEL, "w"),))
    assert formats.recognise(oras, "x") == "openzoo"  # oras push FILE:application/vnd.ollama.image.model
    assert formats.plan("openzoo", oras, b"{}", "x").config is None  # the config then comes from the GGUF
    with pytest.raises(InvalidRequest, match="unknown format"):
        formats.build("safetensors", MODEL)
    assert ollama.LAYERS[0] == mt.MODEL
