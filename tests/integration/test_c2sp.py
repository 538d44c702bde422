"""Issue 16, part 2, with real processes: three ``openzoo serve`` zoos whose logs speak C2SP and witness each
other, checked by Go's reference implementation.

* A Go program built offline from Debian's ``golang-golang-x-mod-dev`` (``sumdb/note``, ``sumdb/tlog``, GOPATH
  mode) opens each zoo's ``/zoo/log/checkpoint`` with the ``keys export zoo --vkey`` key, recomputes the root
  from the tiles and from the entry bundles, proves an inclusion, and checks both witnesses' cosignatures.
* Each zoo witnesses the other two (``openzoo witness add``) and asks them to cosign (``witness ask``); the
  servers do so by themselves after appends. A seal made under a policy that requires 2 of 2 witnesses
  verifies offline only once they cosigned a head that includes it.
* Zoo C's catalog is restored from a snapshot and different entries appended (a forked log): its witnesses
  answer 409 (the size they know), then refuse the proof, and keep fork evidence that ``openzoo monitor
  verify-evidence`` accepts with C's vkey.
* The witness endpoint's answers (404, 403, 400, 409, 422, 413), tiles past the tree (404) and bad tile paths
  (400) over HTTP; ``openzoo monitor`` never says "consistent" about a head it could not check.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from openzoo import config
from openzoo.certify.checkpoint import Checkpoint, parse_note
from openzoo.certify.cosignature import verify_cosignatures
from openzoo.certify.note import parse_vkey
from openzoo.certify.service import Certification
from openzoo.facts.canonical import b64encode
from openzoo.schema import open_store
from openzoo.services import Services
from support.cli import openzoo
from support.gguf_files import write_gguf
from support.server import Server, free_port, start_server, stop_server
from support.zoos import copy_db, wait_for

GO_SOURCE = Path(__file__).parent / "go" / "c2spcheck" / "main.go"
X_MOD = Path("/usr/share/gocode/src/golang.org/x/mod/sumdb")
MODEL = "tiny:v1"


@pytest.fixture(scope="module")
def go_checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go checker, built offline in GOPATH mode (cached by the hash of its source)."""
    go = shutil.which("go")
    if go is None or not X_MOD.is_dir():
        pytest.skip("needs Debian's golang-go and golang-golang-x-mod-dev ('make test' installs them)")
    digest = hashlib.sha256(GO_SOURCE.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "openzoo"
    binary = cache / f"c2spcheck-{digest}"
    if not binary.exists():
        work = tmp_path_factory.mktemp("go")
        env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{work / 'gopath'}:/usr/share/gocode",
               "GOCACHE": str(work / "cache"), "GOFLAGS": "", "CGO_ENABLED": "0"}
        cache.mkdir(parents=True, exist_ok=True)
        built = work / "c2spcheck"
        subprocess.run([go, "build", "-o", str(built), str(GO_SOURCE)], env=env, check=True, timeout=300,
                       capture_output=True)
        os.replace(built, binary)
    return binary


@dataclass
class Zoo:
    name: str
    home: Path
    port: int
    origin: str
    vkey: str  # the log's note verifier key
    witness_vkey: str
    server: Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def checkpoint(self) -> str:
        return httpx.get(self.url + "/zoo/log/checkpoint", timeout=30).text


def in_zoo(zoo_home: Path, work: Callable[[Any], Any]) -> Any:
    """Run ``work`` on the zoo's certification in this process (its server, if running, re-reads the catalog)."""
    store = open_store(zoo_home)
    try:
        return work(Certification(store))
    finally:
        store.close()


def new_zoo(name: str, root: Path) -> Zoo:
    def keys(cert: Any) -> tuple[str, str, str]:
        return cert.log.origin, cert.log.log_key.verifier.vkey, cert.witness.signer.verifier.vkey

    origin, vkey, witness_vkey = in_zoo(root / name, keys)
    return Zoo(name, root / name, free_port(), origin, vkey, witness_vkey)


def append(zoo: Zoo, count: int, tag: str) -> None:
    """Append entries in-process while the zoo's server runs (it re-reads the log), and sign the head."""
    def work(cert: Any) -> None:
        with cert.catalog.transaction():
            start = cert.log.size()
            cert.log.append_many([("request", {"tag": tag, "n": start + i}) for i in range(count)])
            cert.log.sign_head(cert.zoo_key())

    in_zoo(zoo.home, work)


def seal_under_witnesses(zoo: Zoo, root: Path, witnesses: list[str]) -> None:
    """A tiny sealed model under a first policy that requires all ``witnesses``' cosignatures."""
    rng = np.random.default_rng(7)
    weights = write_gguf(root / "tiny.gguf", tensors={
        "token_embd.weight": rng.standard_normal((8, 64), dtype=np.float32).astype(np.float16),
        "output_norm.weight": np.ones((64,), dtype=np.float32)})
    services = Services(config.load({"OPENZOO_HOME": str(zoo.home)}))
    try:
        for _ in services.models.import_gguf(weights, MODEL):
            pass
        cert = services.certification
        for reviewer in ("alice", "bob"):
            cert.generate_key(reviewer)
        cert.set_policy(["alice", "bob"], 2, witnesses=witnesses, witness_threshold=len(witnesses))
        cert.request(MODEL)
        cert.approve(MODEL, "alice")
        assert cert.approve(MODEL, "bob")[1] is not None
    finally:
        services.close()


def serve(zoo: Zoo, logs: Path) -> None:
    env = {"OPENZOO_WITNESS_INTERVAL": "0.3s", "OPENZOO_WITNESS_TIMEOUT": "5s"}
    zoo.server = start_server(zoo.home, logs / f"{zoo.name}-{time.monotonic_ns()}.log", env,
                              args=("--no-default-model",), port=zoo.port)


def stop(zoo: Zoo) -> None:
    if zoo.server is not None:
        stop_server(zoo.server)
        zoo.server = None


def cosigned_by(zoo: Zoo, *witnesses: Zoo, size: int | None = None) -> bool:
    note = zoo.checkpoint()
    if size is not None and Checkpoint.parse_body(parse_note(note).text).size != size:
        return False
    found = verify_cosignatures(note, [parse_vkey(w.witness_vkey) for w in witnesses])
    return len(found) == len(witnesses)


@pytest.fixture(scope="module")
def zoos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("c2sp")
    a, b, c = (new_zoo(n, root) for n in "abc")
    assert openzoo(a.home, "keys", "export", "zoo", "--vkey").stdout.strip() == a.vkey
    # A witnesses B and asks B as people do it; everything else in-process (the same calls, faster)
    assert openzoo(a.home, "witness", "add", b.origin, b.vkey, b.url).returncode == 0
    assert openzoo(a.home, "witness", "ask", b.witness_vkey, b.url).returncode == 0
    for zoo in (a, b, c):
        def configure(cert: Any, zoo: Zoo = zoo) -> None:
            for other in (o for o in (a, b, c) if o is not zoo and (zoo, o) != (a, b)):
                cert.witness.add(other.origin, other.vkey, other.url)
                cert.witnesses.add(other.witness_vkey, other.url)

        in_zoo(zoo.home, configure)
    seal_under_witnesses(a, root, [b.witness_vkey, c.witness_vkey])
    append(b, 3, "b")
    append(c, 300, "shared")  # past one full tile: level-1 tiles too
    snapshot = root / "c-snapshot.sqlite"
    copy_db(c.home / "catalog.sqlite", snapshot)
    logs = root / "logs"
    logs.mkdir()
    try:
        with ThreadPoolExecutor(3) as pool:  # the three start at once
            list(pool.map(lambda zoo: serve(zoo, logs), (a, b, c)))
        yield {"a": a, "b": b, "c": c, "root": root, "snapshot": snapshot, "logs": logs}
    finally:
        for zoo in (a, b, c):
            stop(zoo)


def test_go_reference_checks_checkpoints_tiles_and_cosignatures(zoos: dict[str, Any], go_checker: Path) -> None:
    a, b, c = zoos["a"], zoos["b"], zoos["c"]
    for zoo in (a, b, c):
        others = [o for o in (a, b, c) if o is not zoo]
        wait_for(f"{zoo.name}'s witnesses to cosign", lambda z=zoo, o=others: cosigned_by(z, *o))
        run = subprocess.run([str(go_checker), zoo.url, zoo.vkey, *(o.witness_vkey for o in others)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"checkpoint {zoo.origin} " in run.stdout and "verified by " + zoo.origin in run.stdout
        assert run.stdout.count("cosignature ") == 2 and "inclusion of record" in run.stdout
    assert "tiles root" in run.stdout and "entries 300 root" in run.stdout  # C: a full tile, a partial, level 1
    wrong = subprocess.run([str(go_checker), c.url, a.vkey], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and "note.Open" in wrong.stdout  # another zoo's key does not open C's note


def test_tiles_over_http(zoos: dict[str, Any]) -> None:
    c = zoos["c"]
    size = Checkpoint.parse_body(parse_note(c.checkpoint()).text).size
    full = httpx.get(c.url + "/zoo/log/tile/0/000")
    assert full.status_code == 200 and len(full.content) == 256 * 32
    assert "immutable" in full.headers["cache-control"]
    assert full.headers["content-type"] == "application/octet-stream"
    partial = httpx.get(c.url + f"/zoo/log/tile/0/001.p/{size - 256}")
    assert partial.status_code == 200 and "immutable" not in partial.headers["cache-control"]
    checkpoint = httpx.get(c.url + "/zoo/log/checkpoint")
    assert checkpoint.headers["content-type"].startswith("text/plain") and "no-cache" in checkpoint.headers[
        "cache-control"]
    past = httpx.get(c.url + "/zoo/log/tile/0/001")
    assert past.status_code == 404 and "past the log's tree" in past.json()["error"]
    assert httpx.get(c.url + "/zoo/log/tile/entries/005.p/3").status_code == 404
    for bad in ("tile/0/1", "tile/0/x000/001", "tile/99/000", "tile/0/000.p/300", "tile/x/000"):
        answer = httpx.get(c.url + "/zoo/log/" + bad)
        assert answer.status_code == 400 and "not a tile path" in answer.json()["error"], bad


def test_witness_endpoint_answers(zoos: dict[str, Any]) -> None:
    a, c = zoos["a"], zoos["c"]
    wait_for("A to cosign C", lambda: cosigned_by(c, a))
    note = c.checkpoint()
    size = Checkpoint.parse_body(parse_note(note).text).size
    post = lambda body: httpx.post(a.url + "/zoo/witness/add-checkpoint", content=body, timeout=30)  # noqa: E731
    stale = post(f"old 0\n\n{note}".encode())
    assert stale.status_code == 409 and stale.text == f"{size}\n"
    assert stale.headers["content-type"].startswith("text/x.tlog.size")
    again = post(f"old {size}\n\n{note}".encode())
    assert again.status_code == 200 and again.text.startswith("— " + a.witness_vkey.split("+")[0] + " ")
    unknown = note.replace(c.origin, "elsewhere.example/log", 1)
    assert post(f"old 0\n\n{unknown}".encode()).status_code == 404
    text = parse_note(note).text
    forged = text + "\n— " + c.origin + " " + b64encode(parse_vkey(c.vkey).hint + bytes(64)) + "\n"
    assert post(f"old {size}\n\n{forged}".encode()).status_code == 403
    assert post(f"old {size + 1}\n\n{note}".encode()).status_code == 400
    assert post(f"old {size}\n{b64encode(bytes(32))}\n\n{note}".encode()).status_code == 422
    assert post(b"old 0\n\n" + b"x" * (100 * 1024)).status_code == 413
    assert post(b"nonsense").status_code == 400


def test_verify_needs_the_policy_witnesses(zoos: dict[str, Any], tmp_path: Path) -> None:
    a, b, c = zoos["a"], zoos["b"], zoos["c"]
    wait_for("A's witnesses to cosign", lambda: cosigned_by(a, b, c))
    ok = openzoo(a.home, "verify", MODEL)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "witnesses" in ok.stdout and "2 of 2 witnesses cosigned" in ok.stdout
    # Another zoo pulls the model: its receipt carries the cosignatures, checked offline by 'verify'.
    d = tmp_path / "d"
    pem = httpx.get(a.url + "/zoo/keys/zoo").content
    in_zoo(d, lambda cert: cert.trust("zoo-a", pem))
    pulled = openzoo(d, "pull", f"127.0.0.1:{a.port}/library/{MODEL}")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    offline = openzoo(d, "verify", MODEL)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "2 of 2 witnesses cosigned" in offline.stdout


def test_monitor_never_calls_unchecked_consistent(zoos: dict[str, Any], tmp_path: Path) -> None:
    a, b, c = zoos["a"], zoos["b"], zoos["c"]
    wait_for("A's witnesses to cosign", lambda: cosigned_by(a, b, c))
    fresh = tmp_path / "watcher"
    unpinned = openzoo(fresh, "monitor", a.url)
    assert unpinned.returncode == 3 and "consistent" not in unpinned.stdout.replace("inconsistent", "")
    assert "cannot be checked" in unpinned.stdout
    pem = httpx.get(a.url + "/zoo/keys/zoo").content
    in_zoo(fresh, lambda cert: cert.trust("zoo-a", pem))  # 'openzoo keys trust zoo-a a.pub'
    unknown_witnesses = openzoo(fresh, "monitor", a.url)
    assert unknown_witnesses.returncode == 3, unknown_witnesses.stdout
    assert "cosignature by " + b.origin + "/witness cannot be checked" in unknown_witnesses.stdout
    in_zoo(fresh, lambda cert: [cert.witnesses.add(w.witness_vkey, w.url) for w in (b, c)])  # witness ask
    checked = openzoo(fresh, "monitor", a.url)
    assert checked.returncode == 0 and f"{a.url}: consistent" in checked.stdout, checked.stdout
    assert checked.stdout.count("verifies") == 2


def test_a_forked_log_is_refused_by_its_witnesses_with_evidence(zoos: dict[str, Any], tmp_path: Path) -> None:
    a, b, c = zoos["a"], zoos["b"], zoos["c"]
    append(c, 5, "honest")  # 305 entries, cosigned by both witnesses
    wait_for("C's witnesses to cosign 305", lambda: cosigned_by(c, a, b, size=305))
    stop(c)
    copy_db(zoos["snapshot"], c.home / "catalog.sqlite")  # the rewrite: back to 300, another history
    append(c, 7, "rewritten")
    serve(c, zoos["logs"])

    def refused() -> bool:
        return all(in_zoo(w.home, lambda cert: cert.gossip.forks(c.origin)) for w in (a, b))

    wait_for("both witnesses to keep fork evidence", refused)
    assert not cosigned_by(c, a) and not cosigned_by(c, b)
    listed = openzoo(c.home, "witness", "list")
    assert "ERROR refused (422)" in listed.stdout and "does not extend" in listed.stdout, listed.stdout
    evidence = tmp_path / "evidence"
    assert openzoo(a.home, "monitor", "forks", "--write", str(evidence)).returncode == 0
    (file,) = evidence.iterdir()
    checked = openzoo(tmp_path / "third-party", "monitor", "verify-evidence", str(file), "--key", c.vkey)
    assert checked.returncode == 0 and "valid fork evidence (prefix-mismatch" in checked.stdout, checked.stdout
    # A witness answers a stale old size of the forked log with 409 and the size it cosigned.
    note = c.checkpoint()
    stale = httpx.post(b.url + "/zoo/witness/add-checkpoint", content=f"old 300\n\n{note}".encode())
    assert stale.status_code == 409 and stale.text == "305\n"
    # The cosignatures of the honest history stay where they were: A's log is untouched.
    assert cosigned_by(a, b, c)
