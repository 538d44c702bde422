"""Issue 4's scenario as written, with real ``openzoo`` processes and two (or more) zoos on loopback.

Zoo A certifies the default model (keys, policy, request, approvals, verify, log verify) and serves it;
zoo B trusts A's key, pulls the model (verified against A), verifies offline after A is gone, resumes an
interrupted pull, and refuses what a tampered A serves. Tamper tests flip one byte of a weight blob, the
card, the seal, an approval, a log entry or a tree head in a copy of A's home and check that ``verify`` /
``log verify`` fail naming it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.cli import clone_home
from support.server import Server, start_server, stop_server

MODEL = "gemma3:270m"


def oz(home: Path, *args: str, env: dict[str, str] | None = None,
       timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENZOO_", "OLLAMA_"))}
    full.update({"OPENZOO_HOME": str(home), **(env or {})})
    return subprocess.run([sys.executable, "-m", "openzoo", *args], env=full, capture_output=True, text=True,
                          timeout=timeout, check=False)


def out(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def layer_digest(home: Path, media_type: str) -> str:
    from openzoo import names
    from openzoo.schema import open_store

    store = open_store(home)
    try:
        manifest = store.resolve(names.parse(MODEL)).manifest
        layer = manifest.first(media_type)
        assert layer is not None, media_type
        return layer.digest
    finally:
        store.close()


def flip_blob(home: Path, digest: str) -> None:
    path = home / "blobs" / ("sha256-" + digest[7:])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.unlink()  # break the hard link to the original home
    path.write_bytes(bytes(data))


def sql(home: Path, *statements: str) -> None:
    with sqlite3.connect(home / "catalog.sqlite") as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="module")
def zoo_a(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Zoo A after the first half of the scenario, with every command's result kept for the test."""
    home = clone_home(model_home, tmp_path_factory.mktemp("zoo") / "a")
    steps: dict[str, object] = {"home": home}
    for name in ("alice", "bob", "carol"):
        result = oz(home, "keys", "generate", name)
        assert result.returncode == 0, out(result)
    steps["policy"] = oz(home, "certify", "policy", "--reviewers", "alice,bob,carol", "--threshold", "2")
    steps["request"] = oz(home, "certify", "request", MODEL)
    steps["approve alice"] = oz(home, "certify", "approve", MODEL, "--key", "alice")
    steps["verify 1 of 2"] = oz(home, "verify", MODEL)
    steps["approve alice again"] = oz(home, "certify", "approve", MODEL, "--key", "alice")
    steps["approve bob"] = oz(home, "certify", "approve", MODEL, "--key", "bob")
    steps["verify sealed"] = oz(home, "verify", MODEL)
    steps["log verify"] = oz(home, "log", "verify")
    steps["keys export"] = oz(home, "keys", "export", "zoo")
    pub = home.parent / "zoo.pub"
    pub.write_text(steps["keys export"].stdout)  # type: ignore[union-attr]
    steps["pub"] = pub
    return steps


@pytest.fixture(scope="module")
def server_a(zoo_a: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(zoo_a["home"], tmp_path_factory.mktemp("logs") / "zoo-a.log")  # type: ignore[arg-type]
    yield srv
    stop_server(srv)


def _step(zoo_a: dict[str, object], name: str) -> subprocess.CompletedProcess[str]:
    result = zoo_a[name]
    assert isinstance(result, subprocess.CompletedProcess)
    return result


def test_scenario_on_zoo_a(zoo_a: dict[str, object]) -> None:
    assert _step(zoo_a, "policy").returncode == 0, out(_step(zoo_a, "policy"))
    request = _step(zoo_a, "request")
    assert request.returncode == 0, out(request)
    assert "restricted license (Gemma Terms of Use), not open source" in request.stdout
    assert _step(zoo_a, "approve alice").returncode == 0, out(_step(zoo_a, "approve alice"))
    pending = _step(zoo_a, "verify 1 of 2")
    assert pending.returncode == 1 and "1 of 2 approvals" in pending.stdout, out(pending)
    again = _step(zoo_a, "approve alice again")
    assert again.returncode == 1 and "already approved by alice" in again.stderr, out(again)
    bob = _step(zoo_a, "approve bob")
    assert bob.returncode == 0 and "sealed" in bob.stdout, out(bob)
    sealed = _step(zoo_a, "verify sealed")
    assert sealed.returncode == 0, out(sealed)
    for check in ("seal signature", "quorum", "log inclusion", "revocation", "approvals logged"):
        assert any(line.startswith("ok") and check in line for line in sealed.stdout.splitlines()), check
    assert "2 of 2 approvals (alice, bob)" in sealed.stdout
    log_verify = _step(zoo_a, "log verify")
    assert log_verify.returncode == 0 and "log verified" in log_verify.stdout, out(log_verify)
    assert "BEGIN PUBLIC KEY" in _step(zoo_a, "keys export").stdout


def test_card_says_base_model_and_gemma_terms(zoo_a: dict[str, object]) -> None:
    home = zoo_a["home"]
    assert isinstance(home, Path)
    card = oz(home, "card", MODEL)
    assert card.returncode == 0, out(card)
    assert "base_model" in card.stdout and "base model" in card.stdout
    assert "Gemma Terms of Use" in card.stdout and "not open source" in card.stdout
    openness = oz(home, "show", MODEL, "--openness")
    assert openness.returncode == 0 and "is blocked by" in openness.stdout, out(openness)


def test_key_outside_policy_is_refused(model_home: Path, tmp_path: Path) -> None:
    home = clone_home(model_home, tmp_path / "a2")
    for name in ("alice", "bob", "mallory"):
        assert oz(home, "keys", "generate", name).returncode == 0
    assert oz(home, "certify", "policy", "--reviewers", "alice,bob", "--threshold", "2").returncode == 0
    assert oz(home, "certify", "request", MODEL).returncode == 0
    result = oz(home, "certify", "approve", MODEL, "--key", "mallory")
    assert result.returncode == 1 and "not a reviewer" in result.stderr, out(result)


def test_pull_between_zoos_then_verify_offline(zoo_a: dict[str, object], server_a: Server,
                                               tmp_path: Path) -> None:
    home_b = tmp_path / "b"
    trust = oz(home_b, "keys", "trust", "zoo-a", str(zoo_a["pub"]))
    assert trust.returncode == 0, out(trust)
    pull = oz(home_b, "pull", f"{server_a.host}/library/{MODEL}")
    assert pull.returncode == 0, out(pull)
    assert "verified against zoo-a" in pull.stderr and "tagged as certified" in pull.stderr
    stop_server(server_a)  # offline from here on
    verify = oz(home_b, "verify", MODEL)
    assert verify.returncode == 0, out(verify)
    assert "certified by zoo-a" in verify.stdout
    restarted = start_server(server_a.home, server_a.log.with_name("zoo-a-2.log"))
    server_a.url, server_a.process = restarted.url, restarted.process


def test_api_pull_uses_the_registry_client(server_a: Server) -> None:
    resp = httpx.post(f"{server_a.url}/api/pull", json={"model": f"{server_a.host}/library/{MODEL}",
                                                        "stream": False}, timeout=120)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "success"}
    seal = httpx.get(f"{server_a.url}/zoo/models/{MODEL}/seal", timeout=30).json()
    assert seal["receipt"]["kind"] == "seal"
    assert httpx.get(f"{server_a.url}/zoo/log/head", timeout=30).text.startswith("openzoo/")
    weights = seal["bundle"]["envelope"]
    assert weights["payloadType"] == "application/vnd.in-toto+json"
    manifest = httpx.get(f"{server_a.url}/v2/library/gemma3/manifests/270m", timeout=30)
    assert manifest.status_code == 200 and manifest.headers["docker-content-digest"].startswith("sha256:")
    digest = manifest.json()["layers"][0]["digest"]
    ranged = httpx.get(f"{server_a.url}/v2/library/gemma3/blobs/{digest}", headers={"Range": "bytes=0-3"},
                       timeout=30)
    assert ranged.status_code == 206 and ranged.content == b"GGUF"
    assert ranged.headers["content-range"].startswith("bytes 0-3/")


def test_interrupted_pull_resumes(zoo_a: dict[str, object], server_a: Server, tmp_path: Path) -> None:
    home_b = tmp_path / "b"
    assert oz(home_b, "keys", "trust", "zoo-a", str(zoo_a["pub"])).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENZOO_", "OLLAMA_"))}
    env["OPENZOO_HOME"] = str(home_b)
    proc = subprocess.Popen([sys.executable, "-m", "openzoo", "pull", f"{server_a.host}/library/{MODEL}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    downloads = home_b / "downloads"
    deadline = time.monotonic() + 120
    partial: Path | None = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            found = [p for p in downloads.glob("*.partial") if p.stat().st_size > 1 << 20] if downloads.exists() else []
            if found:
                partial = found[0]
                os.kill(server_a.process.pid, signal.SIGSTOP)  # freeze the transfer mid-way
                break
            time.sleep(0.005)
        proc.kill()
        proc.wait()
    finally:
        os.kill(server_a.process.pid, signal.SIGCONT)
    assert partial is not None and partial.exists(), "the pull finished before it could be interrupted"
    done = partial.stat().st_size
    resumed = oz(home_b, "pull", f"{server_a.host}/library/{MODEL}")
    assert resumed.returncode == 0, out(resumed)
    assert f"at {done} of" in resumed.stderr, out(resumed)
    assert oz(home_b, "verify", MODEL).returncode == 0


TAMPERS = ["weights", "card", "seal", "approval", "log entry", "tree head", "revoked"]


def tamper(home: Path, what: str) -> None:
    from openzoo.store import manifests as mt

    if what in ("weights", "card", "seal"):
        media = {"weights": mt.MODEL, "card": mt.CARD, "seal": mt.SEAL}[what]
        flip_blob(home, layer_digest(home, media))
    elif what == "approval":
        sql(home, "DROP TRIGGER log_entries_no_update",
            "UPDATE log_entries SET body = replace(body, '\"reviewer\":\"bob\"', '\"reviewer\":\"bpb\"') "
            "WHERE kind = 'approval'")
    elif what == "log entry":
        sql(home, "DROP TRIGGER log_entries_no_update", "UPDATE log_entries SET ts = ts + 1 WHERE kind = 'seal'")
    elif what == "tree head":
        with sqlite3.connect(home / "catalog.sqlite") as conn:
            size, note = conn.execute("SELECT size, note FROM log_heads ORDER BY size DESC LIMIT 1").fetchone()
            lines = note.split("\n")
            lines[2] = ("B" if lines[2][0] != "B" else "C") + lines[2][1:]  # one character of the root hash
            conn.execute("DROP TRIGGER log_heads_no_update")
            conn.execute("UPDATE log_heads SET note = ? WHERE size = ?", ("\n".join(lines), size))
    elif what == "revoked":
        result = oz(home, "certify", "revoke", MODEL, "--reason", "found a problem")
        assert result.returncode == 0, out(result)


EXPECTED = {
    "weights": ("digests", "weights blob"),
    "card": ("digests", "card blob"),
    "seal": ("digests", "seal blob"),
    "approval": ("approvals logged", "approval by bpb"),
    "log entry": ("log inclusion", "not included"),
    "tree head": ("log inclusion", "signature"),
    "revoked": ("revocation", "found a problem"),
}


@pytest.mark.parametrize("what", TAMPERS)
def test_tampering_fails_verify_and_remote_pull(what: str, zoo_a: dict[str, object], tmp_path: Path) -> None:
    home = clone_home(zoo_a["home"], tmp_path / "a")  # type: ignore[arg-type]
    tamper(home, what)
    verify = oz(home, "verify", MODEL)
    assert verify.returncode == 1, out(verify)
    check, words = EXPECTED[what]
    failed = [line for line in verify.stdout.splitlines() if line.startswith("FAIL")]
    assert any(check in line and words in line for line in failed), out(verify)
    log_verify = oz(home, "log", "verify")
    if what in ("approval", "log entry", "tree head"):
        assert log_verify.returncode == 1, out(log_verify)
    srv = start_server(home, tmp_path / "tampered.log")
    try:
        home_b = tmp_path / "b"
        assert oz(home_b, "keys", "trust", "zoo-a", str(zoo_a["pub"])).returncode == 0
        pull = oz(home_b, "pull", f"{srv.host}/library/{MODEL}")
        assert pull.returncode == 1, out(pull)
        assert "refused" in pull.stderr, out(pull)
        assert "gemma3" not in oz(home_b, "list").stdout
        if what == "revoked":  # --insecure keeps it, marked uncertified, and verify says so
            insecure = oz(home_b, "pull", "--insecure", f"{srv.host}/library/{MODEL}")
            assert insecure.returncode == 0 and "tagged as uncertified" in insecure.stderr, out(insecure)
            verify_b = oz(home_b, "verify", MODEL)
            assert verify_b.returncode == 1 and "uncertified" in verify_b.stdout, out(verify_b)
    finally:
        stop_server(srv)


def test_push_needs_the_receiving_zoos_api_key(zoo_a: dict[str, object], tmp_path: Path) -> None:
    srv = start_server(tmp_path / "c", tmp_path / "zoo-c.log", {"OPENZOO_API_KEY": "s3cret"})
    try:
        target = f"{srv.host}/library/{MODEL}"
        home = zoo_a["home"]
        assert isinstance(home, Path)
        refused = oz(home, "push", MODEL, "--to", target)
        assert refused.returncode == 1 and "API key" in refused.stderr, out(refused)
        pushed = oz(home, "push", MODEL, "--to", target, env={"OPENZOO_REMOTE_API_KEY": "s3cret"})
        assert pushed.returncode == 0, out(pushed)
        tags = httpx.get(f"{srv.url}/api/tags", headers={"Authorization": "Bearer s3cret"}, timeout=30).json()
        local = oz(home, "list").stdout
        digest = next(line.split()[1] for line in local.splitlines() if line.startswith(MODEL))
        assert any(m["name"] == MODEL and m["digest"].startswith(digest) for m in tags["models"]), tags
    finally:
        stop_server(srv)
