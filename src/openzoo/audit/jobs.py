"""Audit jobs recorded in the catalog, so they outlive the server that ran them and every server sees them.

An audit takes minutes; ``POST /zoo/audits`` answers at once with a job, which one worker thread per
server runs after the ones before it (audits share the machine's cores with the server's requests).
Each job is a row of ``audit_jobs`` (migration 200): model, suites, seed, judge, status, the latest
progress event, the stored report's digest or the error, the owner process and timestamps; its
progress events are rows of ``audit_job_events``. The owning server keeps its running jobs in memory
too, so a client streaming from it sees each event at once; it writes new events to the catalog at
most once a second (and all of them when the job ends), which is what every other server sharing the
catalog, or this one after a restart, reads.

Restarts: a job is owned by one process (:mod:`openzoo.store.owners`), which refreshes the job's
heartbeat every few seconds while it is queued or running. A job whose owner is gone is *not*
re-queued: it is marked ``failed`` with error code ``interrupted``. Audits are not resumable, a fresh
run costs as much as a retry by the client, and silently re-running minutes of work at start-up would
compete with the restarted server's first requests; the client asks again if it still wants the
report. The owner is known to be gone when it is a dead process of this host (so a restarted server
marks its predecessor's jobs at once), or when its heartbeat is older than :data:`LEASE_SECONDS`
(a server on another host that stopped). A report is stored only when a job succeeds, so an
interrupted job left nothing behind.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from openzoo import names
from openzoo.errors import NotFound, OpenzooError
from openzoo.events import Progress
from openzoo.store import migrations
from openzoo.store.catalog import Catalog
from openzoo.store.db import Database
from openzoo.store.owners import Owner, this_process

__all__ = ["INTERRUPTED", "LEASE_SECONDS", "AuditJob", "AuditJobs", "Runner"]

#: How often an owner refreshes the heartbeat of its queued and running jobs.
HEARTBEAT_SECONDS = 5.0
#: A job whose heartbeat is older than this has lost its owner (a server that stopped).
LEASE_SECONDS = 30.0
#: How often new progress events are written to the catalog while a job runs.
FLUSH_SECONDS = 1.0
#: Finished jobs kept in the catalog; older ones (and their events) are dropped as new ones start.
MAX_FINISHED_JOBS = 1000
#: The error code of a job whose server stopped before it finished.
INTERRUPTED = "interrupted"
UNFINISHED = ("queued", "running")


def _m200(db: Database) -> None:
    migrations.run_script(
        db,
        """
        CREATE TABLE audit_jobs (
            id TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            model_key TEXT NOT NULL,
            suites TEXT NOT NULL,
            seed INTEGER NOT NULL,
            judge TEXT,
            status TEXT NOT NULL,
            progress TEXT,
            error TEXT,
            report_digest TEXT,
            manifest_digest TEXT,
            owner TEXT NOT NULL,
            heartbeat_at REAL NOT NULL,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        );
        CREATE INDEX audit_jobs_created ON audit_jobs(created_at);
        CREATE INDEX audit_jobs_model ON audit_jobs(model_key, created_at);
        CREATE INDEX audit_jobs_owner ON audit_jobs(owner, status);
        CREATE TABLE audit_job_events (
            job_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event TEXT NOT NULL,
            PRIMARY KEY (job_id, seq)
        )
        """,
    )


MIGRATION = migrations.Step(200, "audit jobs and their progress events", _m200)


@dataclass
class AuditJob:
    """One job as a client sees it (a copy: changing it changes nothing stored)."""

    id: str
    model: str
    suites: list[str]
    seed: int
    judge: str | None = None
    status: str = "queued"  # queued | running | succeeded | failed
    events: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    report_digest: str | None = None
    manifest_digest: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "model": self.model, "suites": self.suites, "seed": self.seed,
                               "status": self.status, "created_at": _iso(self.created_at)}
        if self.events:
            out["progress"] = self.events[-1]
        if self.report_digest:
            out["report_digest"] = self.report_digest
            out["manifest_digest"] = self.manifest_digest
        if self.error:
            out["error"] = self.error
        if self.finished_at is not None:
            out["finished_at"] = _iso(self.finished_at)
        return out


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


#: Runs one audit: ``(job, data file or None, progress callback) -> (report digest, manifest digest)``.
Runner = Callable[[AuditJob, Path | None, Callable[[Progress], None]], tuple[str, str]]


@dataclass
class _Local:
    """A job this process owns and has not finished: its live state and how much of it is stored."""

    job: AuditJob
    data: tuple[str, str] | None
    stored_events: int = 0
    stored: bool = True  # the catalog holds the job's latest status (events: see stored_events)
    changed: threading.Condition = field(default_factory=threading.Condition)
    storing: threading.Lock = field(default_factory=threading.Lock)  # one write of this job at a time, in order


def progress_line(event: Progress) -> dict[str, Any]:
    """A progress event as the JSON line clients stream."""
    line: dict[str, Any] = {"status": event.status}
    if event.total is not None:
        line["total"] = event.total
        line["completed"] = event.completed or 0
    if event.detail:
        line.update({k: v for k, v in event.detail.items() if isinstance(v, str | int | float)})
    return line


_COLUMNS = ("id, model, suites, seed, judge, status, error, report_digest, manifest_digest, created_at, "
            "started_at, finished_at, owner, heartbeat_at, progress")


class AuditJobs:
    """The audit jobs of a catalog, as one server process runs and reads them."""

    def __init__(self, catalog: Catalog, run: Runner, *, owner: Owner | None = None) -> None:
        self._catalog = catalog
        self._db = catalog.connection
        self._run = run
        self.owner = owner or this_process()
        self._local: dict[str, _Local] = {}
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._beating = False
        self.reap()

    # -- starting and running --------------------------------------------------------------------
    def start(self, model: str, suites: list[str], seed: int, data: tuple[str, str] | None = None,
              judge: str | None = None) -> AuditJob:
        """Record a queued job and run it after this server's earlier ones; ``data`` is (file name, content)."""
        job = AuditJob(id=f"audit-{uuid.uuid4().hex[:12]}", model=model, suites=list(suites), seed=seed, judge=judge)
        with self._catalog.transaction() as tx:
            tx.execute(
                "INSERT INTO audit_jobs(id, model, model_key, suites, seed, judge, status, owner, heartbeat_at, "
                "created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (job.id, model, names.parse(model).key, json.dumps(job.suites), seed, judge, job.status,
                 self.owner.tag, job.created_at, job.created_at))
            self._forget_old(tx)
        local = _Local(job, data)
        with self._lock:
            self._local[job.id] = local
            if not self._beating:
                self._beating = True
                threading.Thread(target=self._beat, name="openzoo-audit-heartbeat", daemon=True).start()
        threading.Thread(target=self._work, args=(local,), name=f"openzoo-{job.id}", daemon=True).start()
        return replace(job, events=[])

    def _work(self, local: _Local) -> None:
        from openzoo.audit.engine_scorer import describe_failure

        job = local.job
        with self._run_lock, tempfile.TemporaryDirectory(prefix="openzoo-audit-") as tmp:
            self._change(local, status="running", started_at=time.time())
            try:
                path: Path | None = None
                if local.data is not None:
                    path = Path(tmp) / Path(local.data[0]).name
                    path.write_text(local.data[1], encoding="utf-8")
                digest, manifest_digest = self._run(replace(job, events=[]), path, lambda e: self._progress(local, e))
            except BaseException as exc:  # a failed job reports why; nothing was stored
                code = exc.code if isinstance(exc, OpenzooError) else "internal"
                self._change(local, status="failed", error={"code": code, "message": describe_failure(exc)},
                             finished_at=time.time())
            else:
                self._change(local, status="succeeded", report_digest=digest, manifest_digest=manifest_digest,
                             finished_at=time.time())

    def _progress(self, local: _Local, event: Progress) -> None:
        with local.changed:
            local.job.events.append(progress_line(event))
            local.changed.notify_all()

    def _change(self, local: _Local, **changes: Any) -> None:
        """Change a job's state: in the catalog first, then in memory for the clients following it.

        So a client that saw the change here finds it in the catalog too, from any server. Should the
        catalog be unreachable, the change is made in memory and the heartbeat thread stores it later
        (a finished job stays in memory until it is stored).
        """
        with local.storing:
            with local.changed:
                target = replace(local.job, events=list(local.job.events), **changes)
            try:
                self._write(local, target)
                stored = True
            except OpenzooError:
                stored = False
            with local.changed:
                for key, value in changes.items():
                    setattr(local.job, key, value)
                local.stored = stored
                local.changed.notify_all()
        self._retire(local)

    def _store(self, local: _Local) -> None:
        """Write the job's current state and new events (the heartbeat thread's once-a-second flush)."""
        with local.storing:
            with local.changed:
                job = replace(local.job, events=list(local.job.events))
            self._write(local, job)
            local.stored = True
        self._retire(local)

    def _write(self, local: _Local, job: AuditJob) -> None:
        fresh = job.events[local.stored_events:]
        with self._catalog.transaction() as tx:
            tx.executemany("INSERT INTO audit_job_events(job_id, seq, event) VALUES (?, ?, ?) "
                           "ON CONFLICT (job_id, seq) DO NOTHING",
                           [(job.id, local.stored_events + i, json.dumps(e)) for i, e in enumerate(fresh)])
            # The owner's word is final, even over a presumed interruption (a heartbeat that was late).
            tx.execute(
                "UPDATE audit_jobs SET status = ?, progress = ?, error = ?, report_digest = ?, manifest_digest = ?, "
                "started_at = ?, finished_at = ?, heartbeat_at = ? WHERE id = ? AND owner = ?",
                (job.status, json.dumps(job.events[-1]) if job.events else None,
                 json.dumps(job.error) if job.error else None, job.report_digest, job.manifest_digest,
                 job.started_at, job.finished_at, time.time(), job.id, self.owner.tag))
        local.stored_events = len(job.events)

    def _retire(self, local: _Local) -> None:
        """Forget a finished job once the catalog holds all of it (readers then go to the catalog)."""
        with local.changed:
            done = local.job.finished and local.stored and local.stored_events == len(local.job.events)
        if done:
            with self._lock:
                self._local.pop(local.job.id, None)

    def _beat(self) -> None:
        """While this process has unfinished jobs: store new events each second, refresh heartbeats."""
        last_beat = 0.0
        while True:
            time.sleep(FLUSH_SECONDS)
            with self._lock:
                local = list(self._local.values())
                if not local:
                    self._beating = False
                    return
            try:
                for item in local:
                    if not item.stored or len(item.job.events) > item.stored_events:
                        self._store(item)
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    with self._catalog.transaction() as tx:
                        tx.execute("UPDATE audit_jobs SET heartbeat_at = ? WHERE owner = ? AND status IN (?, ?)",
                                   (time.time(), self.owner.tag, *UNFINISHED))
                    last_beat = time.monotonic()
            except OpenzooError:  # the catalog is unreachable for now: the job goes on, the next beat retries
                continue

    def _forget_old(self, tx: Database) -> None:
        """Drop the finished jobs beyond the newest :data:`MAX_FINISHED_JOBS`, with their events."""
        row = tx.execute("SELECT created_at FROM audit_jobs WHERE status NOT IN (?, ?) "
                         "ORDER BY created_at DESC LIMIT 1 OFFSET ?", (*UNFINISHED, MAX_FINISHED_JOBS)).fetchone()
        if row is None:
            return
        old = "SELECT id FROM audit_jobs WHERE status NOT IN (?, ?) AND created_at <= ?"
        tx.execute(f"DELETE FROM audit_job_events WHERE job_id IN ({old})", (*UNFINISHED, row[0]))
        tx.execute(f"DELETE FROM audit_jobs WHERE id IN ({old})", (*UNFINISHED, row[0]))

    # -- reading ---------------------------------------------------------------------------------
    def get(self, job_id: str) -> AuditJob:
        """The job now: this process's live state for its own jobs, else the catalog's record."""
        with self._lock:
            local = self._local.get(job_id)
        if local is not None:
            with local.changed:
                return replace(local.job, events=list(local.job.events))
        row = self._row(job_id)
        if row[5] in UNFINISHED and self._orphaned(row[12], row[13]):
            self.reap()
            row = self._row(job_id)
        job = _job(row)
        job.events = [json.loads(r[0]) for r in self._db.execute(
            "SELECT event FROM audit_job_events WHERE job_id = ? ORDER BY seq", (job_id,))]
        return job

    def _row(self, job_id: str) -> tuple[Any, ...]:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM audit_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"audit job {job_id} not found", hint="start one with POST /zoo/audits")
        return row

    def recent(self, model: str | None = None, limit: int = 100) -> list[AuditJob]:
        """Jobs newest first (each with only its latest progress event), optionally of one model."""
        sql, args = f"SELECT {_COLUMNS} FROM audit_jobs", []
        if model is not None:
            sql += " WHERE model_key = ?"
            args.append(names.parse(model).key)
        rows = self._db.execute(sql + " ORDER BY created_at DESC, id LIMIT ?", [*args, limit]).fetchall()
        if any(r[5] in UNFINISHED and self._orphaned(r[12], r[13]) for r in rows):
            self.reap()
            rows = self._db.execute(sql + " ORDER BY created_at DESC, id LIMIT ?", [*args, limit]).fetchall()
        return [self.get(r[0]) if r[0] in self._local else _job(r) for r in rows]

    def follow(self, job_id: str, sent: int, wait: float = 1.0) -> tuple[list[dict[str, Any]], AuditJob]:
        """Events after the first ``sent`` and the job, waiting up to ``wait`` seconds for something new."""
        with self._lock:
            local = self._local.get(job_id)
        if local is not None:
            with local.changed:
                if len(local.job.events) == sent and not local.job.finished:
                    local.changed.wait(timeout=wait)
                job = replace(local.job, events=list(local.job.events))
            return job.events[sent:], job
        job = self.get(job_id)
        if len(job.events) == sent and not job.finished:
            time.sleep(wait)  # another server runs it: its events reach the catalog once a second
            job = self.get(job_id)
        return job.events[sent:], job

    # -- owners that are gone ----------------------------------------------------------------------
    def _orphaned(self, owner_tag: str, heartbeat_at: float) -> bool:
        if owner_tag == self.owner.tag:
            return False
        owner = Owner.parse(owner_tag)
        gone = owner.is_gone() if owner is not None else None
        return bool(gone) or time.time() - float(heartbeat_at) > LEASE_SECONDS

    def reap(self) -> list[str]:
        """Mark the unfinished jobs of owners that are gone as failed/interrupted; return their ids."""
        rows = self._db.execute("SELECT id, owner, heartbeat_at FROM audit_jobs WHERE status IN (?, ?)",
                                UNFINISHED).fetchall()
        gone = [(job_id, owner) for job_id, owner, beat in rows if self._orphaned(owner, beat)]
        if not gone:
            return []
        error = json.dumps({"code": INTERRUPTED, "message": "the server running this audit stopped before it "
                                                            "finished; nothing was stored, start it again"})
        with self._catalog.transaction() as tx:
            for job_id, owner in gone:  # only if still held by that owner: it may have finished meanwhile
                tx.execute("UPDATE audit_jobs SET status = 'failed', error = ?, finished_at = ? "
                           "WHERE id = ? AND owner = ? AND status IN (?, ?)",
                           (error, time.time(), job_id, owner, *UNFINISHED))
        return [job_id for job_id, _ in gone]


def _job(row: tuple[Any, ...]) -> AuditJob:
    return AuditJob(id=row[0], model=row[1], suites=json.loads(row[2]), seed=int(row[3]), judge=row[4],
                    status=row[5], error=json.loads(row[6]) if row[6] else None, report_digest=row[7],
                    manifest_digest=row[8], created_at=float(row[9]),
                    started_at=None if row[10] is None else float(row[10]),
                    finished_at=None if row[11] is None else float(row[11]),
                    events=[json.loads(row[14])] if row[14] else [])
