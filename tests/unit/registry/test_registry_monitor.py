"""The monitor over a real store: honest logs never alarm, forks at every size relation are found and proven
(from this zoo's copy or from the other history's leaves), split views through gossip, evidence from
peers, and bad input (malformed, unsigned, oversized, unreachable, lying leaf sources) stores nothing.

Logs under watch are real :class:`TransparencyLog` instances; misbehaving *zoos* are a small real HTTP
server on loopback answering what each test tells it to.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from openzoo.certify import merkle
from openzoo.certify.gossip import origin_for, verify_evidence
from openzoo.certify.keys import SigningKey, generate_key, load_public_pem
from openzoo.certify.log import TransparencyLog
from openzoo.certify.service import Certification
from openzoo.errors import TransferFailed
from openzoo.facts.canonical import b64encode
from openzoo.registry.monitor import MAX_MIRROR_SIZE, LocalLog, Monitor
from openzoo.schema import open_store
from support.server import free_port

TABLES = ("gossip_logs", "gossip_nodes", "gossip_heads", "gossip_sightings", "gossip_forks")


@pytest.fixture
def cert(tmp_path: Path, catalog_url: str | None) -> Iterator[Certification]:
    store = open_store(tmp_path / "monitor-home", catalog_url)  # the monitor's tables on both catalogs
    yield Certification(store)
    store.close()


@pytest.fixture(scope="module")
def key_c() -> SigningKey:
    return generate_key("zoo-c")


@pytest.fixture(scope="module")
def reviewer_keys() -> dict[str, SigningKey]:
    return {name: generate_key(name) for name in ("alice", "bob")}


def stored(cert: Certification) -> dict[str, int]:
    return {t: cert.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def new_log(key: SigningKey) -> TransparencyLog:
    return TransparencyLog(":memory:", origin=origin_for(key.public), clock=lambda: 1)


def grow(log: TransparencyLog, key: SigningKey, to: int, tag: str) -> str:
    """Append entries ``tag-i`` up to ``to`` entries and sign the head there."""
    log.append_many([("request", {"tag": tag, "i": i}) for i in range(log.size(), to)])
    return log.sign_head(key)


def all_pairs_consistent(cert: Certification, origin: str, log: TransparencyLog) -> int:
    """Check every pair of consistent heads on record with the log's own proofs (not the monitor's copy)."""
    heads = [(h.size, h.root) for h in Monitor(cert, []).store.heads(origin, "consistent")]
    for i, (m, old) in enumerate(heads):
        for n, new in heads[:i]:
            proof = log.consistency_proof(m, n) if m > 0 else []
            assert merkle.verify_consistency(m, n, old, new, proof), (m, n)
    return len(heads)


def test_an_honest_log_never_alarms(cert: Certification, key_c: SigningKey) -> None:
    rng = random.Random(7)
    log = new_log(key_c)
    monitor = Monitor(cert, [key_c.public])
    notes = []
    for _ in range(60):
        notes.append(grow(log, key_c, log.size() + rng.choice([0, 1, 1, 2, 3, 7, 20]), "honest"))
        seen = monitor.observe(notes[-1], "direct:c", [LocalLog(log)])
        assert seen.status in ("ok", "known"), seen
        for old in rng.sample(notes, min(3, len(notes))):  # old heads gossiped back in any order
            assert monitor.observe(old, "gossip:b", []).status in ("ok", "known")
    origin = origin_for(key_c.public)
    assert monitor.store.forks(origin) == [] and monitor.store.heads(origin, "forked") == []
    assert monitor.store.mirror_size(origin) == log.size()
    assert monitor.store.leaves(origin, 0, 10_000) == log.leaves(0, 10_000)
    assert all_pairs_consistent(cert, origin, log) > 30


SIZES = (1, 2, 3, 5, 8, 13)


@pytest.mark.parametrize("prefix", [0, 1, 4])
def test_forks_at_every_size_relation(tmp_path: Path, prefix: int) -> None:
    """History X is seen first, then a head of history Y (sharing ``prefix`` entries) arrives: smaller,
    equal or larger than the copy; the fork is found exactly when both pass the prefix, and the evidence
    convinces someone holding only the public key."""
    store = open_store(tmp_path / "home")
    cert = Certification(store)
    try:
        for x in (prefix, *(prefix + d for d in SIZES)):
            for y in (prefix, *(prefix + d for d in SIZES)):
                key = generate_key("zoo-c")
                outsider = load_public_pem(key.public.pem(), "zoo-c")
                monitor = Monitor(cert, [key.public])
                first, second = new_log(key), new_log(key)
                for log in (first, second):
                    log.append_many([("request", {"shared": i}) for i in range(prefix)])
                early = first.sign_head(key)
                seen_x = [monitor.observe(early, "direct", [LocalLog(first)]),
                          monitor.observe(grow(first, key, x, "x"), "direct", [LocalLog(first)])]
                assert {s.status for s in seen_x} <= {"ok", "known"}
                found = monitor.observe(grow(second, key, y, "y"), "direct", [LocalLog(second)])
                origin = origin_for(key.public)
                if min(x, y) > prefix:
                    assert found.status == "fork" and found.evidence is not None, (prefix, x, y, found)
                    fork = verify_evidence(found.evidence.to_bytes(), outsider)
                    assert fork.kind == ("same-size" if x == y else "prefix-mismatch")
                    assert {fork.smaller_size, fork.larger_size} == {x, y}
                    assert monitor.store.mirror_size(origin) == x  # the forked history never enters the copy
                    assert [h.size for h in monitor.store.heads(origin, "forked")] == [y]
                    assert [f.id for f in monitor.store.forks(origin)] == [found.evidence.id]
                else:
                    assert found.status in ("ok", "known"), (prefix, x, y, found)
                    assert monitor.store.forks(origin) == []
    finally:
        store.close()


def test_split_view_through_gossip(cert: Certification, key_c: SigningKey) -> None:
    """C shows this zoo history X and peer B history Y. A head of X that B relays is checked with the
    leaves of whichever source backs it; a head of Y is a fork, proven with B's copy of Y."""
    x, y = new_log(key_c), new_log(key_c)
    for log in (x, y):
        grow(log, key_c, 4, "shared")
    monitor = Monitor(cert, [key_c.public])
    assert monitor.observe(grow(x, key_c, 6, "x"), "direct", [LocalLog(x)]).status == "ok"
    later_x = grow(x, key_c, 12, "x")
    seen = monitor.observe(later_x, "gossip:b", [LocalLog(y), LocalLog(x)])  # the first source shows Y
    assert seen.status == "ok" and "grew from 6 to 12" in seen.detail
    y_head = grow(y, key_c, 20, "y")
    fork = monitor.observe(y_head, "gossip:b", [LocalLog(x), LocalLog(y)])
    assert fork.status == "fork" and fork.evidence is not None
    assert verify_evidence(fork.evidence, key_c.public).smaller_size == 12
    assert monitor.observe(y_head, "gossip:d", []).status == "fork"  # seen again: still a fork, no new evidence
    assert len(monitor.store.forks(origin_for(key_c.public))) == 1


def test_evidence_from_peers_is_checked_before_it_is_stored(tmp_path: Path, cert: Certification,
                                                            key_c: SigningKey) -> None:
    x, y = new_log(key_c), new_log(key_c)
    finder_store = open_store(tmp_path / "finder")
    try:
        found = Monitor(Certification(finder_store), [key_c.public])
        found.observe(grow(x, key_c, 9, "x"), "direct", [LocalLog(x)])
        evidence = found.observe(grow(y, key_c, 9, "y"), "direct", [LocalLog(y)]).evidence
    finally:
        finder_store.close()
    assert evidence is not None
    other = generate_key("zoo-d")
    monitor = Monitor(cert, [key_c.public])
    before = stored(cert)
    tampered = evidence.to_json()
    tampered["heads"] = [tampered["heads"][0], tampered["heads"][0]]
    assert monitor.import_evidence(tampered, "gossip:b").status == "rejected"
    assert monitor.import_evidence({"type": "nonsense"}, "gossip:b").status == "rejected"
    assert Monitor(cert, [other.public]).import_evidence(evidence.to_json(), "gossip:b").status == "skipped"
    assert stored(cert) == before
    assert monitor.import_evidence(evidence.to_json(), "gossip:b").status == "fork"
    again = monitor.import_evidence(evidence.to_json(), "gossip:e")
    assert again.status == "fork" and "already on record" in again.detail
    assert [f.id for f in monitor.store.forks()] == [evidence.id]


class _Lying:
    """A leaf source that answers with whatever it was given (or raises it)."""

    name = "a lying source"

    def __init__(self, answer: Callable[[int, int], list[bytes]]) -> None:
        self.answer = answer

    def leaves(self, start: int, count: int) -> list[bytes]:
        return self.answer(start, count)


def _unreachable(start: int, count: int) -> list[bytes]:
    raise TransferFailed("cannot reach the zoo at http://127.0.0.1:9: connection refused")


def test_bad_input_stores_nothing(cert: Certification, key_c: SigningKey,
                                  reviewer_keys: dict[str, SigningKey]) -> None:
    log = new_log(key_c)
    note = grow(log, key_c, 5, "x")
    monitor = Monitor(cert, [key_c.public])
    before = stored(cert)
    impostor = grow(new_log(key_c), reviewer_keys["bob"], 5, "x").replace("— bob", "— zoo-c")
    cases = {
        "rejected": ["", "not a note\n", 17, note.replace("\n5\n", "\n6\n"), impostor, note + "x" * 20_000],
        "skipped": [grow(new_log(reviewer_keys["alice"]), reviewer_keys["alice"], 3, "x")],
    }
    for status, notes in cases.items():
        for bad in notes:
            assert monitor.observe(bad, "direct", [LocalLog(log)]).status == status, bad
    liars = {
        "unverified": [_Lying(lambda s, c: [b"\x01" * 32] * c), _Lying(lambda s, c: []),
                       _Lying(lambda s, c: [b"\x01" * 32] * (c + 1))],
        "unreachable": [_Lying(_unreachable)],
    }
    for status, sources in liars.items():
        for source in sources:
            assert monitor.observe(note, "direct", [source]).status == status
    assert monitor.observe(note, "direct", []).status == "unverified"
    huge = log.sign_head(key_c).replace("\n5\n", f"\n{MAX_MIRROR_SIZE + 1}\n")
    assert monitor.observe(huge, "direct", [LocalLog(log)]).status == "rejected"
    assert stored(cert) == before
    assert monitor.observe(note, "direct", [_Lying(_unreachable), LocalLog(log)]).status == "ok"


def test_own_log_and_the_legacy_monitor_head(cert: Certification) -> None:
    """'log monitor' without a URL checks this zoo's own log; the one head per log that the old monitor
    kept (certify_monitor) is folded into the heads seen, then dropped."""
    cert.log_event("request", {"n": 1})
    old = cert.head()
    with cert.catalog.transaction() as conn:
        conn.execute("INSERT INTO certify_monitor (origin, checkpoint, seen_at) VALUES (?, ?, 0)",
                     (cert.log.origin, old))
    cert.log_event("request", {"n": 2})
    report = Monitor(cert).check_self()
    assert [o.status for o in report.observations] == ["ok", "ok"] and not report.forked and not report.problems
    assert cert.conn.execute("SELECT COUNT(*) FROM certify_monitor").fetchone()[0] == 0
    assert report.names == {cert.log.origin: "this zoo"}
    cert.log_event("request", {"n": 3})
    assert [o.status for o in Monitor(cert).check_self().observations] == ["ok"]


# --- a misbehaving zoo over real HTTP ------------------------------------------------------------

Route = Callable[[dict[str, str]], tuple[int, bytes]]


class FakeZoo:
    """A real HTTP server on loopback that answers each path with what the test put in ``routes``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.trickle = 0.0  # seconds to wait before each 1 KiB of an answer
        zoo = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                status, body = zoo.routes.get(url.path, lambda q: (404, b'{"error": "not found"}'))(query)
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                try:
                    for at in range(0, len(body), 1024):
                        time.sleep(zoo.trickle)
                        self.wfile.write(body[at:at + 1024])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the monitor gave up on this answer, as it should

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def zoo() -> Iterator[FakeZoo]:
    fake = FakeZoo()
    yield fake
    fake.close()


def _json(data: Any) -> Route:
    return lambda q: (200, json.dumps(data).encode())


def _serve_log(zoo: FakeZoo, log: TransparencyLog, note: str) -> None:
    leaves = [b64encode(x) for x in log.leaves(0, log.size())]
    zoo.routes["/zoo/log/head"] = lambda q: (200, note.encode())
    zoo.routes["/zoo/log/leaves"] = lambda q: (200, json.dumps({
        "start": int(q["start"]), "leaves": leaves[int(q["start"]):int(q["start"]) + int(q["count"])]}).encode())


def test_misbehaving_zoo_over_http(zoo: FakeZoo, cert: Certification, key_c: SigningKey) -> None:
    log = new_log(key_c)
    older = grow(log, key_c, 20, "x")
    note = grow(log, key_c, 30, "x")
    monitor = Monitor(cert, [key_c.public])
    before = stored(cert)

    def statuses() -> list[str]:
        return [o.status for o in monitor.check_zoo(zoo.url).observations]

    zoo.routes["/zoo/log/head"] = lambda q: (200, b"x" * 100_000)
    assert statuses() == ["rejected", "skipped"]  # the head is too large; the zoo has no gossip to offer
    zoo.routes["/zoo/log/head"] = lambda q: (200, note.encode())
    for leaves in ({"start": 0, "leaves": ["AAAA"]}, {"start": 1, "leaves": []}, [1, 2], {"start": 0}):
        zoo.routes["/zoo/log/leaves"] = _json(leaves)
        assert statuses()[0] == "unverified"
    zoo.routes["/zoo/log/leaves"] = lambda q: (200, b"{" * (5 << 20))
    assert statuses()[0] == "unverified"
    assert stored(cert) == before
    _serve_log(zoo, log, note)
    zoo.routes["/zoo/gossip/heads"] = lambda q: (200, b" " * (5 << 20))
    assert statuses() == ["ok", "rejected"]
    zoo.routes["/zoo/gossip/heads"] = _json({"heads": [{"note": "junk"}, {"note": note}, {"note": 3}]})
    zoo.routes["/zoo/gossip/forks"] = _json({"forks": [{"evidence": {"type": "openzoo.fork-evidence/v1"}}]})
    assert statuses() == ["known", "rejected", "rejected", "known", "rejected"]
    report = monitor.check_zoo(zoo.url)
    assert not report.forked and monitor.store.url(origin_for(key_c.public)) == zoo.url
    zoo.routes["/zoo/log/head"] = lambda q: (200, older.encode())  # a rollback: consistent, but hiding 10 entries
    stale = monitor.check_zoo(zoo.url)
    assert [o.status for o in stale.observations][:2] == ["ok", "stale"] and not stale.forked
    assert "signed one of size 30" in stale.observations[1].detail
    zoo.trickle = 0.2  # a zoo that trickles its answers cannot hold the monitor past its timeout
    zoo.routes["/zoo/gossip/heads"] = _json({"heads": [{"note": note}] * 40})  # 10 KiB: 2 s at that pace
    slow = Monitor(cert, [key_c.public], timeout=1).check_zoo(zoo.url).observations
    assert slow[-1].status == "unreachable" and "took more than 1s" in slow[-1].detail


def test_unreachable_zoo_is_not_a_fork(cert: Certification, key_c: SigningKey) -> None:
    report = Monitor(cert, [key_c.public], timeout=2).check_zoo(f"http://127.0.0.1:{free_port()}")
    assert [o.status for o in report.observations] == ["unreachable"]
    assert not report.forked and stored(cert) == dict.fromkeys(TABLES, 0)


def test_witness_cosignatures_on_a_zoos_head_are_checked(zoo: FakeZoo, cert: Certification, key_c: SigningKey) -> None:
    """A cosignature by a witness this zoo knows verifies (ok); a forged one is rejected; one whose witness is
    unknown here cannot be checked (unverified): never 'consistent' unchecked."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from openzoo.certify.checkpoint import parse_note
    from openzoo.certify.cosignature import add_cosignatures, cosign
    from openzoo.certify.note import COSIGNATURE_V1, NoteSigner

    log = new_log(key_c)
    note = grow(log, key_c, 4, "x")
    known, stranger = (NoteSigner(f"{n}.example/w", COSIGNATURE_V1, Ed25519PrivateKey.generate())
                       for n in ("known", "stranger"))
    cert.witnesses.add(known.verifier.vkey, "http://127.0.0.1:1")
    text = parse_note(note).text

    def round_with(*lines: Any) -> list[tuple[str, str]]:
        _serve_log(zoo, log, add_cosignatures(note, lines))
        report = Monitor(cert, [key_c.public]).check_zoo(zoo.url)
        return [(o.status, o.detail) for o in report.observations if "cosignature" in o.detail]

    assert [s for s, _ in round_with(cosign(text, known, 1700000000))] == ["ok"]
    (status, detail), = round_with(cosign(text, known, 1700000000), cosign(text, stranger, 1700000000))[1:]
    assert status == "unverified" and "stranger.example/w cannot be checked" in detail
    forged = cosign(text + "other\n", known, 1700000000)
    assert [s for s, _ in round_with(forged)] == ["rejected"]
