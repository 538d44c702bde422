"""Transparency log: append-only storage, proofs, signed heads and tamper detection (the monitor is tested
in tests/unit/registry/test_registry_monitor.py).

Every test that stores a log runs on both catalogs (SQLite and PostgreSQL): ``where(name)`` gives a
fresh catalog per name, and opening the same name twice gives two connections to one log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from openzoo.certify import merkle
from openzoo.certify.checkpoint import (
    Checkpoint,
    add_signature,
    parse_note,
    sign_checkpoint,
    verify_checkpoint,
)
from openzoo.certify.keys import SigningKey
from openzoo.certify.log import LogReceipt, TransparencyLog, entry_bytes, verify_receipt
from openzoo.errors import CatalogError, Conflict, InvalidRequest, NotFound, VerificationFailed
from support.postgres import PostgresServer

Where = Callable[[str], str]


@pytest.fixture()
def where(tmp_path: Path, catalog_url: str | None, request: pytest.FixtureRequest) -> Iterator[Where]:
    """Name -> database location: a SQLite file, or a fresh PostgreSQL catalog (schema) per name."""
    if catalog_url is None:
        yield lambda name: str(tmp_path / name)
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    database: str = request.getfixturevalue("postgres_catalogs")
    made: dict[str, str] = {}

    def locate(name: str) -> str:
        if name not in made:
            made[name] = server.create_schema(database)
        return made[name]

    yield locate
    for url in made.values():
        server.drop_schema(url)


@pytest.fixture()
def log(where: Where) -> TransparencyLog:
    clock = iter(range(1_700_000_000_000, 1_800_000_000_000))
    return TransparencyLog(where("log.db"), clock=lambda: next(clock))


def test_append_and_proofs_match_memory_tree(log: TransparencyLog) -> None:
    tree = merkle.MerkleTree()
    for i in range(40):
        idx = log.append("approval", {"i": i, "who": "alice"})
        assert idx == i
        e = log.entry(i)
        tree.append(entry_bytes(e.kind, e.body, e.timestamp))
    log.append_many([("seal", {"i": i}) for i in range(40, 77)])
    for i in range(40, 77):
        e = log.entry(i)
        tree.append(entry_bytes(e.kind, e.body, e.timestamp))
    assert log.head().size == 77 == log.size()
    assert log.head().root_hash == tree.root()
    for n in (1, 2, 5, 33, 64, 77):
        assert log.root(n) == tree.root(n)
        for m in range(n):
            assert log.inclusion_proof(m, n) == tree.inclusion_proof(m, n)
        for m in range(1, n + 1):
            assert log.consistency_proof(m, n) == tree.consistency_proof(m, n)


def test_reopen_continues(where: Where) -> None:
    first = TransparencyLog(where("l.db"))
    first.append_many([("key", {"n": i}) for i in range(13)])
    root13 = first.head().root_hash
    second = TransparencyLog(where("l.db"))
    second.append("key", {"n": 13})
    first.append("key", {"n": 14})  # stale frontier must be refreshed
    assert first.head() == second.head()
    assert second.root(13) == root13
    assert [e.index for e in second.entries(10, 3)] == [10, 11, 12]
    assert [e.index for e in second.entries(kind="key", limit=2)] == [0, 1]


def test_append_only_triggers(log: TransparencyLog, zoo_key: SigningKey) -> None:
    log.append_many([("seal", {"a": 1}), ("seal", {"a": 2})])
    log.sign_head(zoo_key)
    for sql, args in (
        ("UPDATE log_entries SET body = '{}'", ()),
        ("DELETE FROM log_entries", ()),
        ("UPDATE log_nodes SET hash = ?", (b"\x00",)),
        ("DELETE FROM log_heads", ()),
    ):
        with pytest.raises(CatalogError, match="append-only"):
            log.conn.execute(sql, args)
    with pytest.raises(CatalogError, match="index order"):
        log.conn.execute("INSERT INTO log_entries VALUES (5, 'seal', '{}', 0, ?)", (bytes(32),))
    if log.conn.dialect == "postgresql":
        with pytest.raises(CatalogError, match="append-only"):
            log.conn.execute("TRUNCATE log_entries, log_nodes, log_heads")
    assert log.size() == 2


def test_bad_input(log: TransparencyLog) -> None:
    with pytest.raises(InvalidRequest):
        log.append("gossip", {})
    with pytest.raises(InvalidRequest):
        log.append("seal", {"x": 1.5})
    with pytest.raises(NotFound):
        log.entry(0)
    with pytest.raises(NotFound):
        log.checkpoint()
    log.append("seal", {})
    with pytest.raises(Conflict):
        log.append("seal", {}, expected_index=0)
    assert log.append("seal", {}, expected_index=1) == 1
    with pytest.raises(InvalidRequest):
        log.inclusion_proof(0, 3)


def test_checkpoint_format_and_cosign(zoo_key: SigningKey, reviewer_keys: dict[str, SigningKey]) -> None:
    cp = Checkpoint("example.org/log", 5, bytes(range(32)), ("ext line",))
    note = sign_checkpoint(cp, zoo_key)
    lines = note.split("\n")
    assert lines[:4] == ["example.org/log", "5", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "ext line"]
    assert lines[4] == "" and lines[5].startswith("\u2014 zoo ")
    assert verify_checkpoint(note, [zoo_key.public]) == cp
    with pytest.raises(VerificationFailed):
        verify_checkpoint(note, [reviewer_keys["alice"].public])
    with pytest.raises(VerificationFailed):
        verify_checkpoint(note, [zoo_key.public], origin="other/log")
    both = add_signature(note, reviewer_keys["alice"])
    assert len(parse_note(both).signatures) == 2
    assert verify_checkpoint(both, [reviewer_keys["alice"].public]) == cp
    tampered = note.replace("\n5\n", "\n6\n")
    with pytest.raises(VerificationFailed):
        verify_checkpoint(tampered, [zoo_key.public])
    for bad in ("", "no blank line\n", note.replace("\u2014", "-"), "a\n1\nAAAA\n\n\u2014 zoo AAAAAAA=\n"):
        with pytest.raises((InvalidRequest, VerificationFailed)):
            verify_checkpoint(bad, [zoo_key.public])
    with pytest.raises(InvalidRequest):
        Checkpoint.parse_body("a\n1\nAAAA\n")


def test_sign_head_receipt_and_verify_log(log: TransparencyLog, zoo_key: SigningKey) -> None:
    log.append_many([("request", {"n": i}) for i in range(10)])
    note = log.sign_head(zoo_key)
    assert log.sign_head(zoo_key) == note  # one head per size
    log.append("seal", {"model": "gemma3:270m"})
    log.sign_head(zoo_key)
    receipt = log.receipt(10)
    cp = verify_receipt(LogReceipt.from_json(receipt.to_json()), [zoo_key.public], origin=log.origin)
    assert cp.size == 11
    with pytest.raises(Conflict):
        log.receipt(10, checkpoint=note)
    forged = LogReceipt(**{**receipt.__dict__, "body": {"model": "evil"}})
    with pytest.raises(VerificationFailed, match="not included"):
        verify_receipt(forged, [zoo_key.public])
    report = log.verify_log([zoo_key.public])
    assert report.ok, report.problems
    assert (report.size, report.heads_checked) == (11, 2)


def _tamper(log: TransparencyLog, sql: str, *args: object) -> None:
    """Bypass the triggers the way an attacker with access to the database would."""
    on = {"sqlite": "", "postgresql": " ON {}"}[log.conn.dialect]
    for table in ("log_entries", "log_heads"):
        log.conn.execute(f"DROP TRIGGER {table}_no_update" + on.format(table))
    log.conn.execute(sql, args)


@pytest.mark.parametrize(
    ("sql", "expect"),
    [
        ("UPDATE log_entries SET body = '{\"n\":99}' WHERE idx = 3", "entry 3: stored leaf hash"),
        ("UPDATE log_entries SET body = '{ \"n\":3}' WHERE idx = 3", "entry 3: body is not canonical"),
        ("UPDATE log_entries SET ts = ts + 1 WHERE idx = 7", "entry 7: stored leaf hash"),
        ("UPDATE log_entries SET leaf = ? WHERE idx = 9", "entry 9: stored leaf hash"),
        (
            "UPDATE log_heads SET note = replace(note, 'log\n12\n', 'log\n12\n ') WHERE size = 12",
            "signed tree head at size 12",
        ),
    ],
)
def test_verify_log_detects_tampering(log: TransparencyLog, zoo_key: SigningKey, sql: str, expect: str) -> None:
    log.append_many([("request", {"n": i}) for i in range(12)])
    log.sign_head(zoo_key)
    _tamper(log, sql, *((bytes(32),) if "?" in sql else ()))
    report = log.verify_log([zoo_key.public])
    assert not report.ok
    assert any(expect in p for p in report.problems), report.problems


def test_verify_log_detects_rewritten_history(where: Where, zoo_key: SigningKey) -> None:
    log = TransparencyLog(where("a.db"), clock=lambda: 1)
    log.append_many([("request", {"n": i}) for i in range(8)])
    old = log.sign_head(zoo_key)
    evil = TransparencyLog(where("b.db"), clock=lambda: 1)
    evil.append_many([("request", {"n": i if i != 2 else 42}) for i in range(9)])
    evil.conn.execute("INSERT INTO log_heads VALUES (8, ?, 0)", (old,))
    report = evil.verify_log([zoo_key.public])
    assert any("does not match the recomputed root" in p for p in report.problems)
    assert any("no signed" not in p for p in report.problems)
    assert not TransparencyLog(where("c.db")).verify_log([zoo_key.public]).ok  # no head at all


def test_inside_caller_transaction(log: TransparencyLog) -> None:
    log.append("key", {"n": 0})
    with pytest.raises(RuntimeError), log.conn.transaction():
        log.append("key", {"n": 1})
        assert log.size() == 2 and log.head().size == 2
        raise RuntimeError("the caller's transaction fails")
    # the caller's transaction wins: the nested append is undone, and the frontier built for it unused
    assert log.size() == 1 and log.head().size == 1
    assert log.append("key", {"n": 1}) == 1
    tree = merkle.MerkleTree()
    for e in log.entries():
        tree.append(entry_bytes(e.kind, e.body, e.timestamp))
    assert log.head().root_hash == tree.root()
