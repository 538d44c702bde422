"""Issue 11, part 3, with real processes: three ``openzoo serve`` zoos on loopback with pinned keys, each
watching the others' logs (``OPENZOO_MONITOR_PEERS``) and gossiping what it saw.

Zoo C turns malicious the way a real one would: its catalog is snapshotted, A and B watch it grow, then
the snapshot is restored and different entries are appended under the same key. A's ``openzoo monitor``
and the periodic monitors in A's and B's servers report the fork with evidence that ``openzoo monitor
verify-evidence`` accepts offline in a fresh home holding nothing but C's public key. The honest zoos
never raise, including over 1,000 honest appends checked round by round.

The zoos need no model: empty homes, ``serve --no-default-model``. Entries are appended in-process on a
zoo's store while its server runs (the server re-reads the log), which keeps the test to seconds.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from openzoo.certify import merkle
from openzoo.certify.gossip import origin_for
from openzoo.certify.service import Certification
from openzoo.registry.monitor import Monitor
from openzoo.schema import open_store
from support.cli import openzoo
from support.server import Server, free_port, start_server, stop_server
from support.zoos import copy_db, wait_for

INTERVAL = "1s"


@dataclass
class Zoo:
    name: str
    home: Path
    port: int
    origin: str
    pem: bytes
    server: Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **params: Any) -> Any:
        return httpx.get(self.url + path, params=params, timeout=30).json()

    def forks(self, of: Zoo) -> list[dict[str, Any]]:
        return list(self.get("/zoo/gossip/forks", origin=of.origin)["forks"])

    def heads(self, of: Zoo) -> list[dict[str, Any]]:
        return list(self.get("/zoo/gossip/heads", origin=of.origin, limit=256)["heads"])


def new_zoo(name: str, root: Path) -> Zoo:
    store = open_store(root / name)
    try:
        key = Certification(store).zoo_public()
        return Zoo(name, root / name, free_port(), origin_for(key), key.pem())
    finally:
        store.close()


def pin(zoo: Zoo, *others: Zoo) -> None:
    store = open_store(zoo.home)
    try:
        for other in others:
            Certification(store).trust(f"zoo-{other.name}", other.pem)
    finally:
        store.close()


def append(zoo: Zoo, count: int, tag: str) -> str:
    """Append ``count`` entries to the zoo's log in-process (its server keeps running) and sign the head."""
    store = open_store(zoo.home)
    try:
        cert = Certification(store)
        log = cert.log
        start = log.size()
        with store.catalog.transaction():
            log.append_many([("request", {"tag": tag, "n": start + i}) for i in range(count)])
            return log.sign_head(cert.zoo_key())
    finally:
        store.close()


def serve(zoo: Zoo, logs: Path, *peers: Zoo) -> None:
    env = {"OPENZOO_MONITOR_PEERS": ",".join(p.url for p in peers), "OPENZOO_MONITOR_INTERVAL": INTERVAL}
    log = logs / f"{zoo.name}-{time.monotonic_ns()}.log"
    zoo.server = start_server(zoo.home, log, env, args=("--no-default-model",), port=zoo.port)


def stop(zoo: Zoo) -> None:
    if zoo.server is not None:
        stop_server(zoo.server)
        zoo.server = None


def sizes(heads: list[dict[str, Any]], status: str = "consistent") -> set[int]:
    return {h["size"] for h in heads if h["status"] == status}


@pytest.fixture(scope="module")
def zoos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("gossip")
    a, b, c = (new_zoo(n, root) for n in "abc")
    pin(a, b, c)
    pin(b, a, c)
    append(c, 5, "shared")
    snapshot = root / "c-snapshot.sqlite"
    copy_db(c.home / "catalog.sqlite", snapshot)
    logs = root / "logs"
    logs.mkdir()
    try:
        serve(c, logs)
        serve(b, logs, a, c)
        serve(a, logs, b, c)
        yield {"a": a, "b": b, "c": c, "snapshot": snapshot, "logs": logs, "root": root}
    finally:
        for zoo in (a, b, c):
            stop(zoo)


def test_honest_zoos_see_each_other(zoos: dict[str, Any]) -> None:
    a, b, c = zoos["a"], zoos["b"], zoos["c"]
    wait_for("A and B to copy C's log", lambda: 5 in sizes(a.heads(c)) and 5 in sizes(b.heads(c)))
    wait_for("A and B to watch each other", lambda: bool(a.heads(b)) and bool(b.heads(a)))
    checked = openzoo(a.home, "monitor", b.url, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "consistent" in checked.stdout and "zoo-b" in checked.stdout and "zoo-c" in checked.stdout
    for watcher in (a, b):
        assert all(not watcher.forks(z) for z in (a, b, c))


def test_no_false_alarm_over_1000_honest_appends(zoos: dict[str, Any], tmp_path: Path) -> None:
    """B's log grows by 1,000 entries in 25 rounds while A's server watches it; a monitor in this process
    checks B after every round. No alarm anywhere, and every pair of heads on record is consistent by
    B's own consistency proofs."""
    a, b = zoos["a"], zoos["b"]
    store = open_store(tmp_path / "monitor")
    try:
        cert = Certification(store)
        cert.trust("zoo-b", b.pem)
        for round_ in range(25):
            append(b, 40, f"round-{round_}")
            report = Monitor(cert).check_zoo(b.url)
            mine = [o for o in report.observations if o.origin == b.origin]
            assert mine and {o.status for o in mine} <= {"ok", "known"}, mine
            assert not report.forked and not report.problems, report.to_json()
        heads = [(h.size, h.root) for h in Monitor(cert).store.heads(b.origin, "consistent")]
    finally:
        store.close()
    b_store = open_store(b.home)
    try:
        b_log = Certification(b_store).log
        assert len(heads) >= 25 and heads[0][0] == b_log.size() >= 1000
        for i, (m, old) in enumerate(heads):
            for n, new in heads[:i]:
                assert merkle.verify_consistency(m, n, old, new, b_log.consistency_proof(m, n)), (m, n)
    finally:
        b_store.close()
    wait_for("A's server to copy B's grown log", lambda: max(sizes(a.heads(b))) >= 1000)
    assert not a.forks(b) and not sizes(a.heads(b), "forked")


def test_a_forked_zoo_is_caught_and_proven(zoos: dict[str, Any]) -> None:
    a, b, c, logs, root = zoos["a"], zoos["b"], zoos["c"], zoos["logs"], zoos["root"]
    append(c, 5, "x")
    append(c, 5, "x")  # history X: 15 entries
    wait_for("A and B to see C at 15", lambda: 15 in sizes(a.heads(c)) and 15 in sizes(b.heads(c)))
    assert openzoo(a.home, "monitor", c.url).returncode == 0
    wait_for("B's copy of C at 15", lambda: len(b.get("/zoo/gossip/leaves", origin=c.origin)["leaves"]) == 15)
    assert a.get("/zoo/gossip/leaves", origin=c.origin) == b.get("/zoo/gossip/leaves", origin=c.origin) \
        == c.get("/zoo/log/leaves")

    # C rewrites its history: back to the 5-entry snapshot, then different entries, same key.
    stop(c)
    down = openzoo(a.home, "monitor", c.url)
    assert down.returncode == 3 and "unreachable" in down.stdout and "FORK" not in down.stderr
    for suffix in ("-wal", "-shm"):
        (c.home / f"catalog.sqlite{suffix}").unlink(missing_ok=True)
    copy_db(zoos["snapshot"], c.home / "catalog.sqlite")
    serve(c, logs)
    append(c, 3, "y")  # history Y: 8 entries, shorter than what A and B saw

    # The periodic monitors of A's and B's servers catch it on their own...
    wait_for("A's server to prove the fork", lambda: bool(a.forks(c)))
    wait_for("B's server to prove the fork", lambda: bool(b.forks(c)))
    assert "FORK in the log " + c.origin in next(logs.glob("a-*.log")).read_text()
    served = a.forks(c)[0]
    assert served["kind"] == "prefix-mismatch" and served["evidence"]["heads"][0].split("\n")[1] == "8"

    # ...and so does A's CLI, which writes the evidence out.
    out = root / "evidence"
    found = openzoo(a.home, "monitor", c.url, "--evidence-dir", str(out))
    assert found.returncode == 1, found.stdout + found.stderr
    assert "FORK: zoo-c" in found.stderr and "not a prefix" in found.stderr
    files = sorted(out.glob("fork-*.json"))
    assert files

    # C grows Y past what was seen (20 > 15): proven again, now from C's own new leaves.
    append(c, 12, "y")
    grown = openzoo(a.home, "monitor", c.url, "--json")
    assert grown.returncode == 1
    report = json.loads(grown.stdout)
    assert any(o["status"] == "fork" and o["size"] == 20 for o in report["observations"])
    assert len(report["forks"][c.origin]) >= 2

    # Offline, in a fresh home holding only C's public key.
    fresh = root / "fresh"
    fresh.mkdir()
    c_pub = fresh / "zoo-c.pub"
    c_pub.write_bytes(c.pem)
    (fresh / "served.json").write_text(json.dumps(served))
    evidence = [*files, fresh / "served.json", *_write_all(report, c, fresh)]
    checked = openzoo(fresh / "home", "monitor", "verify-evidence", *map(str, evidence), "--key", str(c_pub))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("valid fork evidence") == len(evidence) >= 4
    tampered = fresh / "tampered.json"
    data = json.loads(files[0].read_text())
    data["heads"][0] = data["heads"][0].replace("\n8\n", "\n9\n")
    tampered.write_text(json.dumps(data))
    refused = openzoo(fresh / "home", "monitor", "verify-evidence", str(files[0]), str(tampered), "--key", str(c_pub))
    assert refused.returncode == 1 and "tampered.json: fork evidence" in refused.stderr
    assert "does not verify" in refused.stderr
    (fresh / "zoo-b.pub").write_bytes(b.pem)
    wrong = openzoo(fresh / "home", "monitor", "verify-evidence", str(files[0]), "--key", str(fresh / "zoo-b.pub"))
    assert wrong.returncode == 1 and "Error" in wrong.stderr

    # The honest zoos never raised; A still checks B as consistent.
    for watcher in (a, b):
        assert not watcher.forks(a) and not watcher.forks(b)
    assert openzoo(a.home, "log", "verify").returncode == 0
    honest = openzoo(a.home, "monitor", "check", b.url, "--json")
    assert all(o["status"] in ("ok", "known") for o in json.loads(honest.stdout)["observations"]
               if o["origin"] == b.origin)


def test_a_split_view_is_caught_through_gossip(zoos: dict[str, Any]) -> None:
    """Zoo S shows A one history and B another (two servers, one key): A alone sees nothing wrong, but
    comparing with what B was shown proves the fork, with B's copy of the other history (A's server, which
    gossips with B every second, may be the first to prove it; the CLI then reports the same fork)."""
    a, b, logs, root = zoos["a"], zoos["b"], zoos["logs"], zoos["root"]
    s1 = new_zoo("s", root)
    pin(a, s1)
    append(s1, 4, "shared")
    s2 = Zoo("s2", root / "s2", free_port(), s1.origin, s1.pem)
    s2.home.mkdir()
    shutil.copytree(s1.home / "keys", s2.home / "keys")
    copy_db(s1.home / "catalog.sqlite", s2.home / "catalog.sqlite")
    append(s1, 6, "shown to A")  # 10 entries
    append(s2, 8, "shown to B")  # 12 entries
    try:
        serve(s1, logs)
        serve(s2, logs)
        alone = openzoo(a.home, "monitor", s1.url)
        assert alone.returncode == 0 and "grew from 0 to 10" in alone.stdout, alone.stdout + alone.stderr
        stop(b)
        serve(b, logs, s2)  # from now on B watches S, and is shown the other history
        pin(b, s1)
        wait_for("B to copy its view of S", lambda: 12 in sizes(b.heads(s1)))
        compared = openzoo(a.home, "monitor", b.url, "--json")
        assert compared.returncode == 1, compared.stdout + compared.stderr
        report = json.loads(compared.stdout)
        fork = next(o for o in report["observations"] if o["origin"] == s1.origin and o["status"] == "fork")
        assert fork["size"] == 12 and fork["source"] == f"gossip:{b.url}"
        assert [f["source"] for f in report["forks"][s1.origin]] == [f"gossip:{b.url}"]  # A's CLI or A's server
        assert not b.forks(s1)  # B was shown one history only: it cannot know
        evidence = root / "split.json"
        evidence.write_text(json.dumps(report["forks"][s1.origin][0]["evidence"]))
        (root / "s.pub").write_bytes(s1.pem)
        offline = openzoo(root / "fresh-s", "monitor", "verify-evidence", str(evidence), "--key", str(root / "s.pub"))
        assert offline.returncode == 0 and "whose first 10 entries" in offline.stdout, offline.stdout + offline.stderr
    finally:
        stop(s1)
        stop(s2)


def _write_all(report: dict[str, Any], c: Zoo, folder: Path) -> list[Path]:
    paths = []
    for fork in report["forks"][c.origin]:
        path = folder / f"{fork['id']}.json"
        path.write_text(json.dumps(fork["evidence"]))
        paths.append(path)
    return paths
