"""The board: replica reports in, broadcasts out, stale replicas dropped (plain Python, no Ray)."""

from __future__ import annotations

from openzoo.errors import ModelNotFound
from openzoo.metrics import ReplicaInfo
from openzoo.scale.board import STALE_SECONDS, Board
from openzoo.scale.messages import Outcome


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def info(rid: str, requests: int = 0) -> ReplicaInfo:
    return ReplicaInfo(rid, pid=1, node="n", requests=requests, in_flight=0)


def test_broadcast_reaches_live_replicas_once_and_collects_outcomes() -> None:
    clock = Clock()
    board = Board(clock)
    assert board.report(info("a"), {}) == []
    assert board.report(info("b"), {}) == []
    cid = board.post("unload", ("sha256:x",))
    assert board.outcomes(cid) == ({}, ["a", "b"])
    [command] = board.report(info("a"), {})
    assert (command.id, command.name, command.args) == (cid, "unload", ("sha256:x",))
    assert board.report(info("a"), {}) == []  # handed out once
    board.report(info("a"), {cid: Outcome(True)})
    outcomes, pending = board.outcomes(cid)
    assert outcomes == {"a": Outcome(True)} and pending == ["b"]
    assert [c.id for c in board.report(info("b"), {})] == [cid]
    board.report(info("b"), {cid: Outcome(error=ModelNotFound("m"))})
    outcomes, pending = board.outcomes(cid)
    assert pending == [] and isinstance(outcomes["b"].error, ModelNotFound)


def test_a_replica_registering_later_skips_earlier_broadcasts() -> None:
    board = Board(Clock())
    board.report(info("a"), {})
    cid = board.post("cold_batch", ("m",))
    assert board.report(info("late"), {}) == []
    assert board.outcomes(cid)[1] == ["a"]


def test_stale_and_forgotten_replicas_are_not_waited_for() -> None:
    clock = Clock()
    board = Board(clock)
    board.report(info("a"), {})
    board.report(info("b", requests=3), {})
    cid = board.post("load", ("m", "default", None))
    clock.now += STALE_SECONDS - 1
    board.report(info("a"), {cid: Outcome(0)})
    assert board.outcomes(cid) == ({"a": Outcome(0)}, ["b"])
    clock.now += 2  # b (killed) stopped reporting
    assert board.outcomes(cid)[1] == []
    assert [r.id for r in board.replicas()] == ["a"]
    board.forget("a")
    assert board.replicas() == []
    assert board.post("unload", ("x",)) > cid


def test_replicas_report_their_age() -> None:
    clock = Clock()
    board = Board(clock)
    board.report(info("a", requests=5), {})
    clock.now += 1.5
    [a] = board.replicas()
    assert a.requests == 5 and a.age_s == 1.5
