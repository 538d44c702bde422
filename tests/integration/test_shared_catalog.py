"""Two real ``openzoo serve`` processes sharing one PostgreSQL catalog and one OPENZOO_HOME.

What a multi-server deployment relies on (docs/deployment.md): a model created on one server is listed
and usable on the other, and removed everywhere when removed; certification events written by both
servers and by CLI processes at once make one gapless log that both serve identically; an audit job is
in the catalog, so it is listed after its server is killed and restarted, a finished one with its
report, an interrupted one as failed/interrupted.

The home holds the session's default model (blobs hard-linked, tagged into the PostgreSQL catalog), so
no server imports it again.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from openzoo import names
from openzoo.certify import merkle
from openzoo.certify.checkpoint import Checkpoint, parse_note, verify_checkpoint
from openzoo.certify.keys import load_public_pem
from openzoo.certify.service import Certification
from openzoo.facts.canonical import b64decode
from openzoo.models import DEFAULT_MODEL
from openzoo.schema import open_store
from support.cli import openzoo
from support.postgres import PostgresServer
from support.server import Server, start_server, stop_server

MODEL = DEFAULT_MODEL


@dataclass
class Shared:
    home: Path
    env: dict[str, str]
    logs: Path
    servers: list[Server]

    def start(self, label: str) -> Server:
        return start_server(self.home, self.logs / f"{label}.log", self.env)


def _seed(model_home: Path, home: Path, url: str) -> None:
    """``home`` with the model home's blobs (hard-linked) and its models tagged in the catalog at ``url``."""
    (home / "blobs").mkdir(parents=True)
    for blob in (model_home / "blobs").iterdir():
        if blob.name.startswith("sha256-"):
            try:
                os.link(blob, home / "blobs" / blob.name)
            except OSError:
                shutil.copy2(blob, home / "blobs" / blob.name)
    source, target = open_store(model_home), open_store(home, url)
    try:
        for entry in source.catalog.entries():
            name = names.parse(entry.display)
            target.tag(name, source.resolve(name).manifest)
    finally:
        source.close()
        target.close()


@pytest.fixture(scope="module")
def shared(model_home: Path, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    database = postgres.create_database()
    url = postgres.url(database)
    home = tmp_path_factory.mktemp("shared") / "home"
    _seed(model_home, home, url)
    env = {"OPENZOO_CATALOG_URL": url, "OPENZOO_CONTEXT_LENGTH": "512"}
    group = Shared(home, env, tmp_path_factory.mktemp("shared-logs"), [])
    try:
        group.servers += [group.start("a"), group.start("b")]
        yield group
    finally:
        for server in group.servers:
            stop_server(server)
        postgres.drop_database(database)


def _tags(server: Server) -> set[str]:
    return {m["name"] for m in httpx.get(f"{server.url}/api/tags", timeout=60).json()["models"]}


def test_a_model_made_on_one_server_is_listed_and_usable_on_the_other(shared: Shared) -> None:
    a, b = shared.servers[:2]
    made = httpx.post(f"{a.url}/api/create", json={"model": "terse:1", "from": MODEL, "stream": False,
                                                  "system": "Answer in one word."}, timeout=300)
    assert made.status_code == 200, made.text
    assert "terse:1" in _tags(b)
    shown = httpx.post(f"{b.url}/api/show", json={"model": "terse:1"}, timeout=60).json()
    assert shown["system"] == "Answer in one word."
    reply = httpx.post(f"{b.url}/api/generate", json={"model": "terse:1", "prompt": "Sky colour?", "stream": False,
                                                     "options": {"num_predict": 4, "temperature": 0}}, timeout=300)
    assert reply.status_code == 200, reply.text
    assert reply.json()["done"] is True and reply.json()["eval_count"] >= 1

    assert httpx.post(f"{b.url}/api/copy", json={"source": "terse:1", "destination": "terse-copy:1"},
                      timeout=60).status_code == 200
    assert "terse-copy:1" in _tags(a)
    assert httpx.request("DELETE", f"{a.url}/api/delete", json={"model": "terse-copy:1"}, timeout=60).status_code == 200
    assert "terse-copy:1" not in _tags(b)
    assert httpx.post(f"{b.url}/api/show", json={"model": "terse-copy:1"}, timeout=60).status_code == 404


def test_both_servers_and_the_cli_write_one_log(shared: Shared) -> None:
    a, b = shared.servers[:2]

    def key(n: int) -> str:
        done = openzoo(shared.home, "keys", "generate", f"reviewer-{n}", env=shared.env, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    key(-1)
    first = httpx.get(f"{a.url}/zoo/log/head", timeout=60).text  # signs a head (a write) when none covers the log
    old_size = Checkpoint.parse_body(parse_note(first).text).size
    assert old_size >= 1

    def head(server: Server) -> str:
        return httpx.get(f"{server.url}/zoo/log/head", timeout=60).text

    with ThreadPoolExecutor(8) as pool:  # CLI writers and both servers' head signing, all at once
        keys = [pool.submit(key, n) for n in range(4)]
        heads = [pool.submit(head, server) for _ in range(4) for server in (a, b)]
        assert all("generated reviewer-" in k.result() for k in keys)
        assert all(h.result().startswith("openzoo/") for h in heads)

    note_a, note_b = head(a), head(b)
    assert note_a == note_b  # one signed head per size, whichever server signed it
    size = Checkpoint.parse_body(parse_note(note_b).text).size
    entries = httpx.get(f"{b.url}/zoo/log/entries", params={"start": old_size}, timeout=60).json()["entries"]
    assert size == old_size + 4 and [e["index"] for e in entries] == list(range(old_size, size))
    assert sorted(e["body"]["name"] for e in entries) == [f"reviewer-{n}" for n in range(4)]

    zoo = load_public_pem(httpx.get(f"{a.url}/zoo/keys/zoo", timeout=60).text, "zoo")
    proof = httpx.get(f"{a.url}/zoo/log/proof/consistency", params={"old": old_size}, timeout=60).json()
    assert proof["new_size"] == size
    old, new = verify_checkpoint(first, [zoo]), verify_checkpoint(note_b, [zoo])
    assert merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash,
                                     [b64decode(p) for p in proof["proof"]])
    store = open_store(shared.home, shared.env["OPENZOO_CATALOG_URL"])
    try:
        report = Certification(store).log.verify_log([zoo])
        assert report.ok and report.size == size, report.problems
    finally:
        store.close()


def _stream(server: Server, job_id: str, *, until_progress: bool = False) -> list[dict[str, Any]]:
    """A job's NDJSON status stream: to its end, or only to its first progress line."""
    lines = []
    with httpx.stream("GET", f"{server.url}/zoo/audits/{job_id}", params={"stream": "true"}, timeout=600) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.strip():
                lines.append(json.loads(line))
                if until_progress and "completed" in lines[-1]:
                    break
    return lines


def test_audit_jobs_survive_a_server_restart(shared: Shared) -> None:
    a, b = shared.servers[:2]
    pairs = [{"category": "age", "stereotype": f"Old people are slow {i}.", "anti_stereotype": f"Young people are "
              f"slow {i}."} for i in range(300)]
    data = "".join(json.dumps(p) + "\n" for p in pairs)

    def start(server: Server, count: int) -> str:
        body = {"model": MODEL, "suite": "bias", "seed": 3,
                "data": {"name": "pairs.jsonl", "content": "".join(data.splitlines(True)[:count])}}
        r = httpx.post(f"{server.url}/zoo/audits", json=body, timeout=60)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    done = start(a, 2)
    final = _stream(b, done)[-1]  # followed from the other server, through the catalog
    assert final["status"] == "succeeded", final
    long = start(a, 300)
    queued = start(a, 2)
    assert "completed" in _stream(a, long, until_progress=True)[-1]
    a.process.kill()  # the server dies mid-audit, with a job waiting behind it
    a.process.wait()

    restarted = shared.start("a-restarted")
    shared.servers[0] = restarted
    listed = {job["id"]: job for job in httpx.get(f"{restarted.url}/zoo/audits", timeout=60).json()["audits"]}
    assert listed[done]["status"] == "succeeded" and listed[done]["report_digest"] == final["report_digest"]
    for job_id in (long, queued):
        assert listed[job_id]["status"] == "failed" and listed[job_id]["error"]["code"] == "interrupted"
        assert httpx.get(f"{b.url}/zoo/audits/{job_id}", timeout=60).json()["status"] == "failed"
    stored = httpx.get(f"{b.url}/zoo/models/{MODEL}/audits", timeout=60).json()["audits"]
    assert [s["digest"] for s in stored] == [final["report_digest"]]  # the interrupted audit stored nothing
    filtered = httpx.get(f"{b.url}/zoo/audits", params={"model": MODEL}, timeout=60).json()["audits"]
    assert {job["id"] for job in filtered} == {done, long, queued}
