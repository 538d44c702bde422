"""Fine-tuning jobs run in the server process: one worker thread each, progress kept for replay.

``POST /zoo/finetunes`` starts one; ``GET /zoo/finetunes/{id}`` reads its state and, as NDJSON, every
progress event so far followed by new ones until the job ends. Jobs are recorded in the catalog
(``finetune_jobs``, migration 301), so a restarted server still lists past runs; a job that was running
when the server stopped is marked ``interrupted`` (its checkpoint allows ``--resume``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from openzoo.errors import NotFound, OpenzooError
from openzoo.events import Progress
from openzoo.store import migrations
from openzoo.store.db import Database
from openzoo.store.migrations import run_script

__all__ = ["Job", "Jobs"]


def _m301(conn: Database) -> None:
    run_script(
        conn,
        """
        CREATE TABLE finetune_jobs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            base TEXT NOT NULL,
            status TEXT NOT NULL,
            request TEXT NOT NULL,
            error TEXT,
            lineage TEXT,
            created_at REAL NOT NULL,
            finished_at REAL
        )
        """,
    )


MIGRATION = migrations.Step(301, "finetune: jobs", _m301)


def progress_json(event: Progress) -> dict[str, Any]:
    data: dict[str, Any] = {"status": event.status}
    if event.total is not None:
        data["total"] = event.total
    if event.completed is not None:
        data["completed"] = event.completed
    detail = {k: v for k, v in event.detail.items() if k != "lineage"}
    if detail:
        data.update(detail)
    return data


@dataclass
class Job:
    id: str
    name: str
    base: str
    status: str = "queued"  # queued | running | succeeded | failed | cancelled | interrupted
    events: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    lineage: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled", "interrupted")

    def to_json(self) -> dict[str, Any]:
        last = next((e for e in reversed(self.events) if "loss" in e), None)
        return {"id": self.id, "name": self.name, "base": self.base, "status": self.status,
                "created_at": self.created_at, "error": self.error, "last": self.events[-1] if self.events else None,
                "loss": last.get("loss") if last else None, "lineage": self.lineage}


class Jobs:
    """The jobs of one server; ``run`` takes a factory of the progress stream (it must honour ``should_stop``)."""

    def __init__(self, conn: Database, transaction: Callable[[], Any]) -> None:
        self._conn = conn
        self._transaction = transaction
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        with self._transaction() as tx:
            tx.execute("UPDATE finetune_jobs SET status = 'interrupted', finished_at = ? "
                       "WHERE status IN ('queued', 'running')", (time.time(),))

    def start(self, name: str, base: str, request: dict[str, Any],
              work: Callable[[Callable[[], bool]], Iterator[Progress]]) -> Job:
        job = Job(uuid.uuid4().hex[:16], name, base)
        with self._lock:
            self._jobs[job.id] = job
        with self._transaction() as tx:
            tx.execute("INSERT INTO finetune_jobs(id, name, base, status, request, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (job.id, name, base, job.status, json.dumps(request), job.created_at))
        threading.Thread(target=self._run, args=(job, work), name=f"finetune-{job.id}", daemon=True).start()
        return job

    def _set(self, job: Job, status: str, error: str | None = None) -> None:
        with job.changed:
            job.status, job.error = status, error
            job.changed.notify_all()
        with self._transaction() as tx:
            tx.execute("UPDATE finetune_jobs SET status = ?, error = ?, lineage = ?, finished_at = ? WHERE id = ?",
                       (status, error, json.dumps(job.lineage) if job.lineage else None,
                        time.time() if job.done else None, job.id))

    def _run(self, job: Job, work: Callable[[Callable[[], bool]], Iterator[Progress]]) -> None:
        self._set(job, "running")
        try:
            for event in work(job.cancel.is_set):
                if "lineage" in event.detail:
                    job.lineage = event.detail["lineage"]
                with job.changed:
                    job.events.append(progress_json(event))
                    job.changed.notify_all()
        except KeyboardInterrupt:
            self._set(job, "cancelled", "cancelled; a checkpoint was kept")
        except OpenzooError as exc:
            self._set(job, "failed", exc.message)
        except Exception as exc:  # a job thread must record every failure
            self._set(job, "failed", f"{type(exc).__name__}: {exc}")
        else:
            self._set(job, "succeeded")

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            return job
        row = self._conn.execute("SELECT id, name, base, status, error, lineage, created_at FROM finetune_jobs "
                                 "WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no fine-tuning job {job_id}", hint="list jobs with GET /zoo/finetunes")
        return Job(row[0], row[1], row[2], row[3], error=row[4], lineage=json.loads(row[5]) if row[5] else None,
                   created_at=row[6])

    def list(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT id FROM finetune_jobs ORDER BY created_at DESC LIMIT 100").fetchall()
        return [self.get(r[0]).to_json() for r in rows]

    def follow(self, job_id: str, timeout: float = 0.5) -> Iterator[dict[str, Any]]:
        """Every event of the job so far, then new ones as they come, until it ends."""
        job = self.get(job_id)
        sent = 0
        while True:
            with job.changed:
                if sent >= len(job.events) and not job.done:
                    job.changed.wait(timeout)
                pending = job.events[sent:]
                finished = job.done
            yield from pending
            sent += len(pending)
            if finished and sent >= len(job.events):
                yield {"status": job.status, **({"error": job.error} if job.error else {}), "done": True}
                return
