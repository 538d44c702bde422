"""This zoo's log asks witnesses (C2SP tlog-witness) to cosign its checkpoints, and serves them cosigned.

Why: a checkpoint cosigned by independent witnesses proves to an offline reader that those witnesses saw
the same append-only history (see :mod:`.witness`, the other side). The zoo keeps, per witness it asks
(``openzoo witness ask VKEY URL``, table ``log_witnesses``), the size the witness last cosigned, sends
``old <that size>`` with an RFC 9162 consistency proof from it, and stores each verified cosignature line
by tree size (``log_cosignatures``). ``/zoo/log/checkpoint``, seal receipts and ``openzoo verify`` read the
checkpoint with its cosignatures through :meth:`LogWitnesses.cosigned`.

Asking never blocks an append: ``openzoo serve`` asks from a background thread after the log grew
(``OPENZOO_WITNESS_INTERVAL``), each witness within ``OPENZOO_WITNESS_TIMEOUT``; a dead or refusing witness
is logged and its error kept for ``openzoo witness list``, and the next checkpoint is asked again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from openzoo.certify.checkpoint import Checkpoint, add_note_signature, parse_note
from openzoo.certify.cosignature import add_cosignatures, verify_cosignatures
from openzoo.certify.log import TransparencyLog
from openzoo.certify.note import COSIGNATURE_V1, NoteVerifier, parse_vkey
from openzoo.certify.witness import SIZE_MEDIA_TYPE
from openzoo.errors import InvalidRequest, NotFound, OpenzooError, VerificationFailed
from openzoo.facts.canonical import b64encode
from openzoo.store.catalog import Catalog

__all__ = ["Asked", "LogWitness", "LogWitnesses", "witness_url"]

log = logging.getLogger("openzoo.witness")
MAX_ANSWER_BYTES = 16 * 1024
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,19})\n?$")


def witness_url(url: str) -> str:
    """The witness's submission prefix: a bare zoo URL (no path) means that zoo's ``/zoo/witness``."""
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", url):
        raise InvalidRequest(f"{url!r} is not an http(s) URL", hint="e.g. http://zoo-b:11434")
    return url if re.match(r"^https?://[^/]+/.", url) else url + "/zoo/witness"


@dataclass(frozen=True)
class LogWitness:
    """A witness this zoo asks: its cosignature key, its submission prefix, the size it last cosigned."""

    name: str
    vkey: str
    url: str
    size: int
    last_error: str | None
    asked_at: float | None

    @property
    def verifier(self) -> NoteVerifier:
        return parse_vkey(self.vkey, COSIGNATURE_V1)


@dataclass(frozen=True)
class Asked:
    """What one witness answered for one checkpoint."""

    witness: str
    size: int
    ok: bool
    detail: str


class LogWitnesses:
    """The witnesses of this zoo's log and their cosignatures (one per catalog)."""

    def __init__(self, catalog: Catalog, log_: TransparencyLog, head: Callable[[], str]) -> None:
        self.catalog = catalog
        self.conn = catalog.connection
        self.log = log_
        self.head = head

    # -- configuration ---------------------------------------------------------------------------
    def add(self, vkey: str, url: str) -> LogWitness:
        """Ask the witness with cosignature key ``vkey`` at ``url`` from now on (its name is the key's)."""
        verifier = parse_vkey(vkey, COSIGNATURE_V1)
        prefix = witness_url(url)
        with self.catalog.transaction() as conn:
            conn.execute("INSERT INTO log_witnesses (name, vkey, url, size, added_at) VALUES (?, ?, ?, 0, ?) "
                         "ON CONFLICT (name) DO UPDATE SET vkey = excluded.vkey, url = excluded.url",
                         (verifier.name, verifier.vkey, prefix, time.time()))
        return self.witness(verifier.name)

    def remove(self, name: str) -> None:
        with self.catalog.transaction() as conn:
            if conn.execute("DELETE FROM log_witnesses WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"this zoo does not ask a witness {name!r}", hint="see 'openzoo witness list'")

    def witnesses(self) -> list[LogWitness]:
        rows = self.conn.execute("SELECT name, vkey, url, size, last_error, asked_at FROM log_witnesses "
                                 "ORDER BY name").fetchall()
        return [LogWitness(str(r[0]), str(r[1]), str(r[2]), int(r[3]), r[4], r[5]) for r in rows]

    def witness(self, name: str) -> LogWitness:
        found = next((w for w in self.witnesses() if w.name == name), None)
        if found is None:
            raise NotFound(f"this zoo does not ask a witness {name!r}")
        return found

    def missing(self, size: int) -> list[LogWitness]:
        """The witnesses that have not cosigned the head of ``size`` entries (yet)."""
        done = {str(r[0]) for r in self.conn.execute("SELECT witness FROM log_cosignatures WHERE size = ?",
                                                     (size,)).fetchall()}
        return [w for w in self.witnesses() if w.name not in done]

    # -- cosigned checkpoints --------------------------------------------------------------------
    def cosigned(self, note: str | None = None) -> str:
        """``note`` (default: the latest head) with the log key's Ed25519 line and every cosignature kept for
        its size. Checkpoints signed before the log key existed get its line here (same body, same bytes)."""
        note = self.head() if note is None else note
        if self.log.log_key is not None:
            note = add_note_signature(note, self.log.log_key)
        size = Checkpoint.parse_body(parse_note(note).text).size
        rows = self.conn.execute("SELECT line FROM log_cosignatures WHERE size = ? ORDER BY witness",
                                 (size,)).fetchall()
        if not rows:
            return note
        return add_cosignatures(note, parse_note(note + "".join(str(r[0]) for r in rows)).signatures[-len(rows):])

    def latest_cosigned(self, index: int = 0) -> str | None:
        """The largest head covering entry ``index`` that carries cosignatures, cosigned; None if none does."""
        row = self.conn.execute("SELECT MAX(size) FROM log_cosignatures WHERE size > ?", (index,)).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            return self.cosigned(self.log.checkpoint(int(row[0])))
        except NotFound:
            return None

    # -- asking ----------------------------------------------------------------------------------
    def ask(self, timeout: float = 5.0, api_key: str | None = None) -> list[Asked]:
        """Ask every witness to cosign the latest head; store what verifies; never raises for a witness.

        ``api_key`` (``OPENZOO_REMOTE_API_KEY``) is sent as a bearer token, for witnesses behind one."""
        witnesses = self.witnesses()
        if not witnesses:
            return []
        note = self.cosigned()
        size = Checkpoint.parse_body(parse_note(note).text).size
        answers = []
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        with httpx.Client(timeout=timeout, follow_redirects=False, headers=headers) as client:
            for witness in witnesses:
                try:
                    answer = self._ask(client, witness, note, size)
                except (httpx.HTTPError, OpenzooError) as exc:
                    answer = Asked(witness.name, size, False, f"unreachable: {exc}" if isinstance(exc, httpx.HTTPError)
                                   else str(exc))
                self._record(witness, answer)
                answers.append(answer)
        return answers

    def _ask(self, client: httpx.Client, witness: LogWitness, note: str, size: int) -> Asked:
        old = witness.size
        for _ in range(3):
            if old > size:
                return Asked(witness.name, size, False, f"the witness cosigned {old} entries of this log, which now "
                             f"has {size}: this log lost entries it had signed (restored from a backup?)")
            proof = [] if old in (0, size) else self.log.consistency_proof(old, size)
            body = f"old {old}\n" + "".join(b64encode(p) + "\n" for p in proof) + "\n" + note
            resp = client.post(witness.url + "/add-checkpoint", content=body.encode("utf-8"),
                               headers={"Content-Type": "text/plain; charset=utf-8"})
            text = resp.content[:MAX_ANSWER_BYTES].decode("utf-8", "replace")
            if resp.status_code == 409 and resp.headers.get("content-type", "").startswith(SIZE_MEDIA_TYPE) \
                    and _SIZE.fullmatch(text):
                old = int(text)
                continue
            if resp.status_code != 200:
                return Asked(witness.name, size, False, f"refused ({resp.status_code}): {_reason(text)}")
            return self._store(witness, note, size, text)
        return Asked(witness.name, size, False, "the witness kept changing the size it knows")

    def _store(self, witness: LogWitness, note: str, size: int, answer: str) -> Asked:
        try:
            cosigned = note + answer
            found = verify_cosignatures(cosigned, [witness.verifier])
            lines = [s for s in parse_note(cosigned).signatures
                     if (s.name, s.key_hint) == (witness.verifier.name, witness.verifier.hint)]
        except (InvalidRequest, VerificationFailed) as exc:
            return Asked(witness.name, size, False, f"answered no valid cosignature: {exc}")
        if not found or not lines:
            return Asked(witness.name, size, False, "answered no cosignature by its key")
        with self.catalog.transaction() as conn:
            conn.execute("INSERT INTO log_cosignatures (size, witness, line, ts) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (size, witness) DO UPDATE SET line = excluded.line, ts = excluded.ts",
                         (size, witness.name, lines[-1].line(), time.time()))
        return Asked(witness.name, size, True, f"cosigned at {found[0].timestamp}")

    def _record(self, witness: LogWitness, answer: Asked) -> None:
        if answer.ok:
            log.info("witness %s cosigned this log at size %d", witness.name, answer.size)
        else:
            log.warning("witness %s did not cosign this log at size %d: %s", witness.name, answer.size,
                        answer.detail)
        with self.catalog.transaction() as conn:
            conn.execute("UPDATE log_witnesses SET size = CASE WHEN ? THEN ? ELSE size END, last_error = ?, "
                         "asked_at = ? WHERE name = ?",
                         (int(answer.ok), answer.size, None if answer.ok else answer.detail, time.time(),
                          witness.name))


def _reason(text: str) -> str:
    """One line of a refusal body (the error envelope's message when there is one)."""
    match = re.search(r'"(?:error|message)"\s*:\s*"([^"]{1,300})', text)
    return match.group(1) if match else " ".join(text.split())[:300] or "no reason given"
