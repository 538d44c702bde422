"""Audit jobs in the catalog, on both catalogs: recorded, seen by a second server (or the same after a
restart), interrupted when their owner is gone, and streamed from another server while they run.

The audit itself is a stand-in runner (the real one is exercised by tests/integration/test_audit.py and
test_shared_catalog.py); each "server" here is an :class:`AuditJobs` over its own catalog connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from openzoo import schema
from openzoo.audit import jobs as jobs_module
from openzoo.audit.jobs import INTERRUPTED, LEASE_SECONDS, AuditJob, AuditJobs
from openzoo.errors import InvalidData, NotFound
from openzoo.events import Progress
from openzoo.store.owners import Owner, host_name
from openzoo.store.store import Store

Open = Callable[[], Store]


@pytest.fixture
def open_store(tmp_path: Path, catalog_url: str | None) -> Iterator[Open]:
    """Opens the same store again, as a second server (or a restarted one) would."""
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(schema.open_store(tmp_path / "home", catalog_url))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


def quick(job: AuditJob, data: Path | None, progress: Callable[[Progress], None]) -> tuple[str, str]:
    for done in range(1, 4):
        progress(Progress(f"{job.suites[0]}: items", total=3, completed=done, detail={"suite": job.suites[0]}))
    assert data is not None and data.read_text() == "x\n"
    return "sha256:" + "a" * 64, "sha256:" + "b" * 64


def finish(jobs: AuditJobs, job_id: str) -> tuple[AuditJob, list[dict[str, object]]]:
    """Follow a job to its end (as a streaming client does); the final job and every event seen."""
    seen: list[dict[str, object]] = []
    for _ in range(600):
        fresh, job = jobs.follow(job_id, len(seen), wait=0.2)
        seen += fresh
        if job.finished and len(seen) >= len(job.events):
            return job, seen
    raise AssertionError(f"job {job_id} did not finish")


def test_job_is_recorded_and_seen_after_a_restart(open_store: Open) -> None:
    first = AuditJobs(open_store().catalog, quick)
    started = first.start("tiny:1", ["bias"], 3, ("pairs.jsonl", "x\n"))
    assert started.status == "queued"
    done, seen = finish(first, started.id)
    assert done.status == "succeeded" and done.report_digest == "sha256:" + "a" * 64
    assert [e["completed"] for e in seen] == [1, 2, 3]

    again = AuditJobs(open_store().catalog, quick)  # another server, or this one restarted
    job = again.get(started.id)
    assert (job.status, job.seed, job.suites, job.manifest_digest) == ("succeeded", 3, ["bias"], "sha256:" + "b" * 64)
    assert job.events == seen and job.to_json()["progress"] == seen[-1]
    assert job.finished_at is not None and job.started_at is not None
    assert [j.id for j in again.recent()] == [started.id]
    assert [j.id for j in again.recent(model="TINY:1")] == [started.id]  # names match as the store's do
    assert again.recent(model="other:1") == []
    with pytest.raises(NotFound):
        again.get("audit-unknown")


def test_failure_is_recorded_with_its_code(open_store: Open) -> None:
    def bad(job: AuditJob, data: Path | None, progress: Callable[[Progress], None]) -> tuple[str, str]:
        raise InvalidData("bad.jsonl:2: missing anti_stereotype")

    jobs = AuditJobs(open_store().catalog, bad)
    job, _ = finish(jobs, jobs.start("tiny:1", ["bias"], 0).id)
    stored = AuditJobs(open_store().catalog, bad).get(job.id)
    assert stored.status == "failed"
    assert stored.error == {"code": "invalid_data", "message": "bad.jsonl:2: missing anti_stereotype"}


class Gate:
    """A runner that reports one event and then waits until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.running = threading.Event()

    def __call__(self, job: AuditJob, data: Path | None, progress: Callable[[Progress], None]) -> tuple[str, str]:
        progress(Progress("bias: items", total=2, completed=1))
        self.running.set()
        assert self.opened.wait(60)
        return "sha256:" + "c" * 64, "sha256:" + "d" * 64


def test_jobs_of_a_dead_server_are_interrupted_at_restart(open_store: Open) -> None:
    gate = Gate()
    dead = Owner(host_name(), 999_999_999, "gone")  # a server of this host whose process has ended
    crashed = AuditJobs(open_store().catalog, gate, owner=dead)
    running = crashed.start("tiny:1", ["bias"], 0)
    queued = crashed.start("tiny:1", ["quality"], 0)  # waits behind the first
    assert gate.running.wait(60)
    reader = open_store().catalog.connection
    for _ in range(100):  # the "crash" comes after the owner wrote its first event (it writes no more)
        if reader.execute("SELECT progress FROM audit_jobs WHERE id = ?", (running.id,)).fetchone() != (None,):
            break
        time.sleep(0.1)

    restarted = AuditJobs(open_store().catalog, quick)
    for job_id in (running.id, queued.id):
        job = restarted.get(job_id)
        assert job.status == "failed" and job.error is not None and job.error["code"] == INTERRUPTED
        assert job.finished_at is not None
    assert [j.status for j in restarted.recent()] == ["failed", "failed"]

    # Had the owner lived after all, its own result is what stays recorded.
    gate.opened.set()
    assert finish(crashed, running.id)[0].status == "succeeded"
    assert restarted.get(running.id).status == "succeeded"
    finish(crashed, queued.id)


def test_a_job_of_another_host_is_interrupted_once_its_heartbeat_is_stale(open_store: Open) -> None:
    store = open_store()
    jobs = AuditJobs(store.catalog, quick)
    now = time.time()
    with store.catalog.transaction() as tx:
        tx.execute("INSERT INTO audit_jobs(id, model, model_key, suites, seed, status, owner, heartbeat_at, "
                   "created_at) VALUES ('audit-remote', 'tiny:1', 'k', '[\"bias\"]', 0, 'running', "
                   "'other-host:1:abc', ?, ?)", (now, now))
    assert jobs.get("audit-remote").status == "running"  # its pid means nothing here; its heartbeat is fresh
    with store.catalog.transaction() as tx:
        tx.execute("UPDATE audit_jobs SET heartbeat_at = ? WHERE id = 'audit-remote'", (now - LEASE_SECONDS - 1,))
    job = jobs.get("audit-remote")
    assert job.status == "failed" and job.error is not None and job.error["code"] == INTERRUPTED


def test_another_server_streams_a_running_job(open_store: Open) -> None:
    gate = Gate()
    owner = AuditJobs(open_store().catalog, gate)
    job = owner.start("tiny:1", ["bias"], 0)
    other = AuditJobs(open_store().catalog, quick, owner=Owner(host_name(), 1, "other-server"))
    seen: list[dict[str, object]] = []
    for _ in range(60):  # the owner writes new events to the catalog once a second
        fresh, now = other.follow(job.id, 0, wait=0.5)
        if fresh:
            seen, status = fresh, now.status
            break
    assert seen == [{"status": "bias: items", "total": 2, "completed": 1}] and status == "running"
    gate.opened.set()
    final, events = finish(other, job.id)
    assert final.status == "succeeded" and events == seen


def test_old_finished_jobs_are_dropped(open_store: Open, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs_module, "MAX_FINISHED_JOBS", 1)
    jobs = AuditJobs(open_store().catalog, quick)
    ids = []
    for _ in range(3):
        ids.append(jobs.start("tiny:1", ["bias"], 0, ("d.jsonl", "x\n")).id)
        finish(jobs, ids[-1])
    with pytest.raises(NotFound):
        jobs.get(ids[0])
    assert [j.id for j in jobs.recent()] == [ids[2], ids[1]]
    events = jobs._db.execute("SELECT COUNT(*) FROM audit_job_events WHERE job_id = ?", (ids[0],)).fetchone()
    assert events == (0,)
