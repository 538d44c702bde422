"""Issue 16, part 1, with real processes: a sealed model pushed to a real ``docker-registry`` in each
format openzoo writes (ModelPack, Docker Model Runner, Ollama, openzoo), read back by skopeo (an
independent OCI client, Debian's) and pulled seal-verified by a second zoo in every format; the seal
surviving ``skopeo copy --all`` into another repository; one flipped byte anywhere refused with nothing
stored; artifacts built by hand byte for byte as ModelPack (model-runner, modctl), Docker Model Runner,
Ollama and KitOps write them pulled with ``--insecure`` — and run — and bad input refused.

One registry and one certified zoo for the module; every format is pushed once and shared.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from openzoo import config
from openzoo.models import DEFAULT_MODEL
from openzoo.registry.oci.artifacts import OCI_INDEX, OCI_MANIFEST
from openzoo.services import Services
from openzoo.store import manifests as mt
from support.certified import CertifiedZoo, assert_nothing_stored, certified_zoo, trusting_zoo
from support.cli import openzoo
from support.oci_registry import Registry, get, oci_registry, put_blob, put_manifest  # noqa: F401  (the fixture)

MODEL = "tiny:v1"
FORMATS = ("modelpack", "docker", "ollama", "openzoo")
SCHEMA = json.loads((Path(__file__).parents[1] / "unit" / "registry" / "data" / "modelpack" /
                     "config-schema.json").read_text())
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def out(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def stored_digest(home: Path, name: str) -> str:
    with sqlite3.connect(home / "catalog.sqlite") as conn:
        rows = conn.execute("SELECT key, manifest_digest FROM models").fetchall()
    found = [digest for key, digest in rows if key.endswith(name)]
    assert found, rows
    return str(found[0])


def push(home: Path, model: str, target: str, fmt: str) -> None:
    result = openzoo(home, "push", model, target, "--format", fmt)
    assert result.returncode == 0 and f"as {fmt}" in result.stderr, out(result)


@pytest.fixture(scope="module")
def zoo_a(tmp_path_factory: pytest.TempPathFactory) -> CertifiedZoo:
    return certified_zoo(tmp_path_factory.mktemp("zoo-a"))


@pytest.fixture(scope="module")
def pushed(zoo_a: CertifiedZoo, oci_registry: Registry) -> dict[str, dict[str, Any]]:  # noqa: F811
    """Each format's manifest (as JSON, with its digest under ``_digest``), pushed once."""
    found = {}
    for fmt in FORMATS:
        push(zoo_a.home, MODEL, f"oci://{oci_registry.host}/{fmt}/tiny:v1", fmt)
        raw = get(oci_registry, f"{fmt}/tiny/manifests/v1", f"{OCI_MANIFEST}, {DOCKER_V2}").content
        found[fmt] = {**json.loads(raw), "_digest": sha(raw)}
    return found


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (Debian package skopeo; 'make test' installs it)")
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)


def test_skopeo_reads_every_format(pushed: dict[str, dict[str, Any]], zoo_a: CertifiedZoo,
                                   oci_registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    weights = zoo_a.weights_file.read_bytes()
    for fmt, manifest in pushed.items():
        ref = f"docker://{oci_registry.host}/{fmt}/tiny:v1"
        raw = skopeo("inspect", "--raw", "--tls-verify=false", ref)
        assert raw.returncode == 0, out(raw)
        assert sha(raw.stdout.encode()) == manifest["_digest"]
        folder = tmp_path / fmt
        copied = skopeo("copy", "--src-tls-verify=false", ref, f"dir:{folder}")
        if fmt == "ollama":  # skopeo (containers/image) copies Docker v2 manifests of image layers only, so it
            # refuses Ollama's own models the same way; its raw read above is what it can do
            assert copied.returncode == 1 and "unsupported docker v2s2 media type" in copied.stderr, out(copied)
            assert all(x["mediaType"].startswith("application/vnd.ollama.image.") for x in manifest["layers"])
            assert manifest["mediaType"] == DOCKER_V2
            continue
        assert copied.returncode == 0, (fmt, out(copied))
        assert sha((folder / "manifest.json").read_bytes()) == manifest["_digest"]
        for desc in [manifest["config"], *manifest["layers"]]:
            data = (folder / desc["digest"][7:]).read_bytes()
            assert sha(data) == desc["digest"] and len(data) == desc["size"]
        gguf = [x for x in manifest["layers"] if (folder / x["digest"][7:]).read_bytes() == weights]
        assert len(gguf) == 1, fmt
        expected = {"modelpack": "application/vnd.cncf.model.weight.v1.raw",
                    "docker": "application/vnd.docker.ai.gguf.v3", "ollama": mt.MODEL, "openzoo": mt.MODEL}[fmt]
        assert gguf[0]["mediaType"] == expected
        if fmt == "modelpack":
            assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
            config_bytes = (folder / manifest["config"]["digest"][7:]).read_bytes()
            jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(
                json.loads(config_bytes))
            assert gguf[0]["annotations"]["org.cncf.model.filepath"] == "tiny.gguf"


def test_a_sealed_model_pulls_seal_verified_in_every_format(pushed: dict[str, dict[str, Any]], zoo_a: CertifiedZoo,
                                                            oci_registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    home_b = trusting_zoo(tmp_path, zoo_a)
    for fmt in FORMATS:
        pull = openzoo(home_b, "pull", f"oci://{oci_registry.host}/{fmt}/tiny:v1", "--name", f"{fmt}/tiny:v1")
        assert pull.returncode == 0 and "tagged as certified" in pull.stderr, (fmt, out(pull))
        assert f"a {fmt} model" in pull.stderr
        # the same seal, the same content: the manifest zoo A stores, whatever format carried it
        assert stored_digest(home_b, f"{fmt}/tiny:v1") == stored_digest(zoo_a.home, MODEL)
    verify = openzoo(home_b, "verify", "modelpack/tiny:v1")
    assert verify.returncode == 0, out(verify)


def test_the_seal_survives_skopeo_copy_all(pushed: dict[str, dict[str, Any]], zoo_a: CertifiedZoo,
                                           oci_registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    host = oci_registry.host
    digest = pushed["modelpack"]["_digest"]
    for tag in ("v1", f"sha256-{digest[7:]}"):
        copied = skopeo("copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                        f"docker://{host}/modelpack/tiny:{tag}", f"docker://{host}/mirror/tiny:{tag}")
        assert copied.returncode == 0, out(copied)
    index = get(oci_registry, f"mirror/tiny/manifests/sha256-{digest[7:]}", OCI_INDEX).json()
    assert len(index["manifests"]) == 3
    assert not any("artifactType" in x for x in index["manifests"])  # skopeo 1.9 rewrote the index without them
    home_b = trusting_zoo(tmp_path, zoo_a)
    pull = openzoo(home_b, "pull", f"oci://{host}/mirror/tiny:v1")
    assert pull.returncode == 0 and "tagged as certified" in pull.stderr, out(pull)


def referrer(registry: Registry, repo: str, digest: str, artifact_type: str) -> dict[str, Any]:
    index = get(registry, f"{repo}/manifests/sha256-{digest[7:]}", OCI_INDEX).json()
    item = next(x for x in index["manifests"] if x.get("artifactType") == artifact_type)
    found: dict[str, Any] = get(registry, f"{repo}/manifests/{item['digest']}").json()
    return {**found, "_digest": item["digest"]}


@contextmanager
def flipped(registry: Registry, digest: str) -> Iterator[None]:
    """One hex digit (or, in binary data, one byte) in the middle of a stored blob changed, then restored."""
    path = registry.blob_file(digest)
    original = path.read_bytes()
    middle = len(original) // 2
    at = next((i for i in range(middle, len(original)) if chr(original[i]) in "0123456789abcdef"), middle)
    changed = bytearray(original)
    changed[at] = ord("0") if changed[at] != ord("0") else ord("1")
    path.write_bytes(bytes(changed))
    try:
        yield
    finally:
        path.write_bytes(original)


def test_one_flipped_byte_anywhere_is_refused_and_nothing_stored(pushed: dict[str, dict[str, Any]],
                                                                 zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    manifest = pushed["modelpack"]
    digest = manifest["_digest"]
    seal = referrer(oci_registry, "modelpack/tiny", digest, "application/vnd.openzoo.seal.v1+json")
    proof = referrer(oci_registry, "modelpack/tiny", digest, "application/vnd.openzoo.proof.v1+json")
    targets = {
        "weights": next(x["digest"] for x in manifest["layers"]
                        if x["annotations"]["org.cncf.model.filepath"] == "tiny.gguf"),
        "config": manifest["config"]["digest"],
        "manifest": digest,
        "seal artifact": seal["_digest"],
        **{f"seal {x['mediaType'].split('/')[-1]}": x["digest"] for x in seal["layers"]},
        "proof": proof["layers"][0]["digest"],
    }
    assert {"seal vnd.openzoo.manifest.v1+json", "seal vnd.openzoo.seal.v1+json"} <= set(targets)
    for what, blob in targets.items():
        home_b = trusting_zoo(tmp_path / what.replace(" ", "-").replace("+", "-"), zoo_a)
        with flipped(oci_registry, blob):
            pull = openzoo(home_b, "pull", f"oci://{oci_registry.host}/modelpack/tiny:v1")
        assert pull.returncode == 1 and "refused" in pull.stderr, (what, out(pull))
        assert_nothing_stored(home_b)


# -- artifacts other tools write, byte for byte ---------------------------------------------------------


def go_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def tar_of(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A tar archive as KitOps and modctl write one (uid 1000, zero times, no names)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            info.uid, info.gid, info.mtime = 1000, 0, 0
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def oci_manifest(registry: Registry, repo: str, tag: str, config_type: str, config: bytes,
                 layers: list[tuple[str, bytes, dict[str, str]]], *, artifact_type: str | None = None,
                 media_type: str = OCI_MANIFEST, annotations: dict[str, str] | None = None) -> str:
    """Push blobs and a manifest laid out as Go's encoding/json writes the tools' structs."""
    descs = []
    for layer_type, data, notes in layers:
        desc: dict[str, Any] = {"mediaType": layer_type, "digest": put_blob(registry, repo, data), "size": len(data)}
        if notes:
            desc["annotations"] = notes
        descs.append(desc)
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type:
        body["artifactType"] = artifact_type
    body["config"] = {"mediaType": config_type, "digest": put_blob(registry, repo, config), "size": len(config)}
    body["layers"] = descs
    if annotations:
        body["annotations"] = annotations
    return put_manifest(registry, repo, tag, go_json(body), media_type)


def default_weights(model_home: Path) -> bytes:
    """The default model's GGUF (Gemma 3 270M), to build foreign artifacts that really run."""
    services = Services(config.load({"OPENZOO_HOME": str(model_home)}))
    try:
        return services.models.resolve(DEFAULT_MODEL).weights.read_bytes()
    finally:
        services.close()


@pytest.fixture(scope="module")
def foreign(model_home: Path, zoo_a: CertifiedZoo, oci_registry: Registry) -> dict[str, str]:  # noqa: F811
    """Artifacts as each tool writes them (tag -> what it is) under ``foreign/model``."""
    registry, repo = oci_registry, "foreign/model"
    weights = default_weights(model_home)
    tiny = zoo_a.weights_file.read_bytes()
    license_text = b"Gemma Terms of Use (test copy)\n"
    created = "2025-11-20T10:00:00Z"
    meta = go_json({"name": "model.gguf", "mode": 420, "uid": 0, "gid": 0, "size": len(weights),
                    "mtime": created, "typeflag": 0}).decode()
    # Docker Model Runner, `docker model package --gguf model.gguf --license LICENSE --format cncf`
    runner_cncf = go_json({"descriptor": {"createdAt": created, "family": "gemma3"},
                           "modelfs": {"type": "layers", "diffIds": [sha(weights), sha(license_text)]},
                           "config": {"architecture": "gemma3", "format": "gguf", "paramSize": "268.10 M",
                                      "quantization": "Q4_K_M"}})
    oci_manifest(registry, repo, "modelpack", "application/vnd.cncf.model.config.v1+json", runner_cncf, [
        ("application/vnd.cncf.model.weight.v1.raw", weights,
         {"org.cncf.model.file.metadata+json": meta, "org.cncf.model.file.mediatype.untested": "false",
          "org.cncf.model.filepath": "model.gguf"}),
        ("application/vnd.cncf.model.doc.v1.raw", license_text, {"org.cncf.model.filepath": "LICENSE"}),
    ], artifact_type="application/vnd.cncf.model.manifest.v1+json")
    # Docker Model Runner's own format, config v0.2
    docker_config = go_json({"config": {"format": "gguf", "quantization": "Q4_K_M", "parameters": "268.10 M",
                                        "architecture": "gemma3", "size": "241.41 MiB", "context_size": 32768},
                             "descriptor": {"created": created},
                             "rootfs": {"type": "rootfs", "diff_ids": [sha(weights), sha(license_text)]}})
    oci_manifest(registry, repo, "docker", "application/vnd.docker.ai.model.config.v0.2+json", docker_config, [
        ("application/vnd.docker.ai.gguf.v3", weights, {"org.cncf.model.filepath": "model.gguf"}),
        ("application/vnd.docker.ai.license", license_text, {"org.cncf.model.filepath": "LICENSE"}),
    ])
    # Ollama, as `ollama create` + `ollama push` write it (ConfigV2 through json.Encoder: trailing newline)
    ollama_config = go_json({"model_format": "gguf", "model_family": "gemma3", "model_families": ["gemma3"],
                             "model_type": "268.10M", "file_type": "Q4_K_M", "architecture": "amd64",
                             "os": "linux"}) + b"\n"
    oci_manifest(registry, repo, "ollama", mt.CONFIG_MEDIA_TYPE, ollama_config, [
        (mt.MODEL, weights, {}), (mt.TEMPLATE, b"{{ .Prompt }}", {}), (mt.SYSTEM, b"You count.", {}),
        (mt.PARAMS, go_json({"num_predict": 8, "temperature": 0}), {}), (mt.LICENSE, license_text, {}),
    ], media_type=DOCKER_V2)
    # modctl: ModelPack with tar layers, descriptor with name and licenses
    modctl_config = go_json({"descriptor": {"createdAt": created, "authors": ["tester"], "family": "llama",
                                            "name": "tiny-modctl", "version": "v1", "licenses": ["Apache-2.0"],
                                            "description": "a tiny model packed by modctl"},
                             "modelfs": {"type": "layers", "diffIds": [sha(tiny)]}, "config": {"format": "gguf"}})
    oci_manifest(registry, repo, "modctl", "application/vnd.cncf.model.config.v1+json", modctl_config, [
        ("application/vnd.cncf.model.weight.v1.tar", tar_of([file_member("tiny.gguf", tiny)]),
         {"org.cncf.model.filepath": "tiny.gguf"}),
    ], artifact_type="application/vnd.cncf.model.manifest.v1+json")
    # KitOps ModelKit: the Kitfile as config, the model folder as a tar layer
    kitfile = go_json({"manifestVersion": "1.0.0", "package": {"name": "tiny-kit", "version": "1.0.0",
                                                                "license": "MIT", "authors": ["kit"]},
                       "model": {"name": "tiny", "path": "models", "license": "MIT"},
                       "docs": [{"path": "README.md"}]})
    folder = tarfile.TarInfo("models")
    folder.type, folder.mode = tarfile.DIRTYPE, 0o755
    oci_manifest(registry, repo, "kitops", "application/vnd.kitops.modelkit.config.v1+json", kitfile, [
        ("application/vnd.kitops.modelkit.model.v1.tar", tar_of([(folder, None), file_member("models/tiny.gguf",
                                                                                            tiny)]), {}),
        ("application/vnd.kitops.modelkit.docs.v1.tar", tar_of([file_member("README.md", b"# tiny\n")]), {}),
    ], annotations={"ml.kitops.modelkit.cli-version": "1.10.0"})
    return {"modelpack": "Docker Model Runner cncf", "docker": "Docker Model Runner", "ollama": "Ollama",
            "modctl": "modctl ModelPack tar", "kitops": "KitOps ModelKit"}


def layers_of(home: Path, name: str) -> dict[str, bytes]:
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    try:
        manifest = services.models.resolve(name).manifest
        assert manifest is not None
        return {x.media_type: services.store.blobs.read(x.digest) for x in manifest.layers}
    finally:
        services.close()


def test_artifacts_other_tools_write_pull_insecurely_and_run(foreign: dict[str, str], zoo_a: CertifiedZoo,
                                                             oci_registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    home = tmp_path / "c"
    for tag in foreign:
        refused = openzoo(home, "pull", f"oci://{oci_registry.host}/foreign/model:{tag}", "--name", f"f/{tag}:v1")
        assert refused.returncode == 1 and "no seal artifact" in refused.stderr, (tag, out(refused))
        kept = openzoo(home, "pull", "--insecure", f"oci://{oci_registry.host}/foreign/model:{tag}",
                       "--name", f"f/{tag}:v1")
        assert kept.returncode == 0 and "tagged as uncertified" in kept.stderr, (tag, out(kept))
        assert f"a {'modelpack' if tag == 'modctl' else tag} model" in kept.stderr
    ollama = layers_of(home, "f/ollama:v1")
    assert ollama[mt.TEMPLATE] == b"{{ .Prompt }}" and ollama[mt.SYSTEM] == b"You count."
    assert json.loads(ollama[mt.PARAMS]) == {"num_predict": 8, "temperature": 0}
    assert ollama[mt.LICENSE].startswith(b"Gemma Terms of Use")
    for tag in ("modctl", "kitops"):
        assert layers_of(home, f"f/{tag}:v1")[mt.MODEL] == zoo_a.weights_file.read_bytes(), tag
    modctl_card = layers_of(home, "f/modctl:v1")[mt.CARD].decode()
    assert "license: apache-2.0" in modctl_card and "a tiny model packed by modctl" in modctl_card
    assert "tester" in modctl_card
    assert "license: mit" in layers_of(home, "f/kitops:v1")[mt.CARD].decode()
    # they run: a real generation on each pulled default model, greedy, 8 tokens
    outputs = {}
    for tag in ("modelpack", "docker", "ollama"):
        name = f"f/{tag}:v1"
        if tag != "ollama":
            modelfile = tmp_path / f"{tag}.Modelfile"
            modelfile.write_text(f"FROM {name}\nPARAMETER num_predict 8\nPARAMETER temperature 0\n")
            created = openzoo(home, "create", f"f/{tag}-short:v1", "-f", str(modelfile))
            assert created.returncode == 0, out(created)
            name = f"f/{tag}-short:v1"
        ran = openzoo(home, "run", name, "Count: one, two,", "--verbose", "--keepalive", "0")
        assert ran.returncode == 0 and "eval count" in ran.stderr, (tag, out(ran))
        outputs[tag] = ran.stdout
    assert outputs["modelpack"] == outputs["docker"]  # the same GGUF under greedy decoding
    # then certifiable in this zoo like an import
    request = openzoo(home, "certify", "request", "f/modelpack:v1")
    assert request.returncode == 0, out(request)


# -- bad input ---------------------------------------------------------------------------------------------


def test_bad_input_is_refused_clearly_and_nothing_stored(zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                                         tmp_path: Path) -> None:
    registry, repo = oci_registry, "bad/formats"
    tiny = zoo_a.weights_file.read_bytes()
    mp_config = go_json({"descriptor": {}, "modelfs": {"type": "layers", "diffIds": [sha(tiny)]},
                         "config": {"format": "gguf"}})
    kit = go_json({"manifestVersion": "1.0.0", "model": {"path": "tiny.gguf"}})
    link = tarfile.TarInfo("tiny.gguf")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("tiny.gguf")
    hard.type, hard.linkname = tarfile.LNKTYPE, "other"
    device = tarfile.TarInfo("tiny.gguf")
    device.type = tarfile.CHRTYPE
    cases = {
        "dotdot": ([("application/vnd.kitops.modelkit.model.v1.tar",
                     tar_of([file_member("../evil", b"x"), file_member("tiny.gguf", tiny)]), {})],
                   "application/vnd.kitops.modelkit.config.v1+json", kit, "climbs out of the archive"),
        "absolute": ([("application/vnd.cncf.model.weight.v1.tar", tar_of([file_member("/tmp/tiny.gguf", tiny)]),
                       {"org.cncf.model.filepath": "tiny.gguf"})],
                     "application/vnd.cncf.model.config.v1+json", mp_config, "absolute path"),
        "symlink": ([("application/vnd.kitops.modelkit.model.v1.tar", tar_of([(link, None)]), {})],
                    "application/vnd.kitops.modelkit.config.v1+json", kit, "is a link"),
        "hardlink": ([("application/vnd.kitops.modelkit.model.v1.tar",
                       tar_of([file_member("other", tiny), (hard, None)]), {})],
                     "application/vnd.kitops.modelkit.config.v1+json", kit, "is a link"),
        "device": ([("application/vnd.kitops.modelkit.model.v1.tar", tar_of([(device, None)]), {})],
                   "application/vnd.kitops.modelkit.config.v1+json", kit, "device"),
        "unknown-weight": ([("application/vnd.cncf.model.weight.v1.exe", tiny, {})],
                           "application/vnd.cncf.model.config.v1+json", mp_config, "unknown media type"),
        "unknown-layer": ([(mt.MODEL, tiny, {}), ("application/x-evil", b"evil", {})],
                          mt.CONFIG_MEDIA_TYPE, b"{}", "unknown media type"),
        "bad-config": ([("application/vnd.cncf.model.weight.v1.raw", tiny, {"org.cncf.model.filepath": "m.gguf"})],
                       "application/vnd.cncf.model.config.v1+json", b"{not json", "malformed ModelPack config"),
        "not-gguf": ([(mt.MODEL, b"not a gguf file at all" * 100, {})], mt.CONFIG_MEDIA_TYPE,
                     go_json({"model_format": "gguf"}) + b"\n", "not a valid GGUF"),
    }
    home = tmp_path / "d"
    for tag, (layers, config_type, config_bytes, words) in cases.items():
        media_type = DOCKER_V2 if config_type == mt.CONFIG_MEDIA_TYPE and tag == "not-gguf" else OCI_MANIFEST
        oci_manifest(registry, repo, tag, config_type, config_bytes, layers, media_type=media_type)
        pull = openzoo(home, "pull", "--insecure", f"oci://{registry.host}/{repo}:{tag}")
        assert pull.returncode == 1 and words in pull.stderr, (tag, out(pull))
        assert_nothing_stored(home)
    # a wrong size declared for a blob this zoo already holds
    good = oci_manifest(registry, repo, "good", mt.CONFIG_MEDIA_TYPE, b"{}", [(mt.MODEL, tiny, {})])
    assert good and openzoo(home, "pull", "--insecure", f"oci://{registry.host}/{repo}:good").returncode == 0
    before = sorted(p.name for p in (home / "blobs").glob("sha256-*"))
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": mt.CONFIG_MEDIA_TYPE, "digest": sha(b"{}"), "size": 2},
            "layers": [{"mediaType": mt.MODEL, "digest": sha(tiny), "size": len(tiny) - 1}]}
    put_manifest(registry, repo, "wrong-size", go_json(body))
    pull = openzoo(home, "pull", "--insecure", f"oci://{registry.host}/{repo}:wrong-size")
    assert pull.returncode == 1 and "which this zoo holds as" in pull.stderr, out(pull)
    assert sorted(p.name for p in (home / "blobs").glob("sha256-*")) == before
    with sqlite3.connect(home / "catalog.sqlite") as conn:
        assert len(conn.execute("SELECT key FROM models").fetchall()) == 2  # the good pull: full and short name


def test_a_model_created_from_a_sealed_one_starts_unsealed_with_lineage(zoo_a: CertifiedZoo, tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {MODEL}\nSYSTEM You are derived.\n")
    created = openzoo(zoo_a.home, "create", "derived:v1", "-f", str(modelfile))
    assert created.returncode == 0, out(created)
    layers = layers_of(zoo_a.home, "derived:v1")
    assert mt.SEAL not in layers and layers[mt.SYSTEM] == b"You are derived."
    lineage = json.loads(layers[mt.LINEAGE])
    assert lineage["derivation"] == "create" and lineage["base"]["name"] == MODEL
    assert lineage["base"]["manifest_digest"] == stored_digest(zoo_a.home, MODEL)
    assert openzoo(zoo_a.home, "verify", MODEL).returncode == 0  # the source keeps its seal
    assert openzoo(zoo_a.home, "rm", "derived:v1").returncode == 0
