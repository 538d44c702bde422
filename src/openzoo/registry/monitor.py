"""Monitoring other zoos' logs: fetch their signed heads directly and by gossip, check every head against
this zoo's own view of the log, and prove forks. What ``openzoo monitor ZOO_URL`` and the periodic task of
``openzoo serve`` (``OPENZOO_MONITOR_PEERS``) run.

One round against a zoo at URL:

1. its latest signed head (``/zoo/log/head``), checked against the pinned key of its origin;
2. the heads it saw of other logs (``/zoo/gossip/heads``): what it was shown, to compare with what we
   were shown; heads of logs whose key we have not pinned are skipped, never stored;
3. the fork evidence it holds (``/zoo/gossip/forks``), re-verified here before it is stored.

Each head goes through :meth:`Monitor.observe`: a head within the mirror (see
:mod:`openzoo.certify.gossip_store`) is compared with the mirror's root at its size; a larger one needs
the new leaves, from the log itself or from the gossiping zoo's copy, and they must hash to the signed
root before anything is stored. A disagreement becomes fork evidence (:mod:`openzoo.certify.gossip`)
built from leaves that hash to a signed root, so it convinces a third party holding only the log's key.
A zoo that does not answer is *unreachable*, a zoo that answers nonsense is *rejected*, and a head that no
source can back with leaves is *unverified*: none of these is a fork, and none stores anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from openzoo.certify import merkle
from openzoo.certify.checkpoint import Checkpoint, parse_note
from openzoo.certify.gossip import (
    ForkEvidence,
    SignedHead,
    evidence_from_json,
    origin_for,
    pinned_key,
    prefix_evidence,
    same_size_evidence,
    verify_evidence,
    verify_head,
)
from openzoo.certify.gossip_store import GossipStore, StoredFork, StoredHead
from openzoo.certify.keys import PublicKey
from openzoo.certify.log import TransparencyLog
from openzoo.certify.service import Certification
from openzoo.errors import (
    BadAnswer,
    Conflict,
    InvalidRequest,
    NotFound,
    OpenzooError,
    TransferFailed,
    UnknownLog,
    VerificationFailed,
)
from openzoo.registry.client import LEAVES_PER_PAGE, RegistryClient

__all__ = ["MAX_MIRROR_SIZE", "LeafSource", "LocalLog", "Monitor", "MonitorReport", "Observation", "PeerMirror",
           "RemoteLog"]

MAX_MIRROR_SIZE = 1 << 22  # entries of one log a monitor copies (128 MiB of leaf hashes); larger heads are refused
MAX_GOSSIP_HEADS = 1000  # heads taken from one zoo's gossip per round
TIMEOUT = 15.0  # seconds per request to another zoo

Status = Literal["ok", "known", "fork", "stale", "unverified", "rejected", "skipped", "unreachable"]
PROBLEMS = ("stale", "unverified", "rejected", "unreachable")


class LeafSource(Protocol):
    """Somewhere the leaf hashes of a log can be read; nothing it says is trusted until it hashes to a
    signed root."""

    @property
    def name(self) -> str: ...

    def leaves(self, start: int, count: int) -> list[bytes]:
        """Up to ``count`` leaf hashes from index ``start`` (fewer at the end of what it has)."""
        ...


@dataclass(frozen=True)
class LocalLog:
    """This zoo's own log, for checking its own heads (``openzoo log monitor``, ``log verify``)."""

    log: TransparencyLog
    name: str = "this zoo's log"

    def leaves(self, start: int, count: int) -> list[bytes]:
        return self.log.leaves(start, count)


@dataclass(frozen=True)
class RemoteLog:
    """Another zoo's own log (``/zoo/log/leaves``)."""

    client: RegistryClient

    @property
    def name(self) -> str:
        return f"the log at {self.client.base}"

    def leaves(self, start: int, count: int) -> list[bytes]:
        return self.client.log_leaves(start, count)


@dataclass(frozen=True)
class PeerMirror:
    """Another zoo's copy of a third zoo's log (``/zoo/gossip/leaves``): how a monitor checks a head it
    learned by gossip when the log itself shows it something else."""

    client: RegistryClient
    origin: str

    @property
    def name(self) -> str:
        return f"{self.client.base}'s copy of {self.origin}"

    def leaves(self, start: int, count: int) -> list[bytes]:
        return self.client.gossip_leaves(self.origin, start, count)


@dataclass(frozen=True)
class Observation:
    """What became of one head (or one piece of evidence) from one source."""

    status: Status
    source: str
    detail: str
    origin: str | None = None
    size: int | None = None
    evidence: ForkEvidence | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "source": self.source, "detail": self.detail, "origin": self.origin,
                "size": self.size, "evidence": None if self.evidence is None else self.evidence.id}


@dataclass
class MonitorReport:
    """One round against one zoo: every observation, and every fork on record for the logs it involved."""

    target: str
    observations: list[Observation] = field(default_factory=list)
    forks: dict[str, list[StoredFork]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def forked(self) -> bool:
        return any(self.forks.values())

    @property
    def problems(self) -> list[Observation]:
        return [o for o in self.observations if o.status in PROBLEMS]

    def origins(self) -> list[str]:
        """The logs this round learned something about (refused heads only claim an origin)."""
        return sorted({o.origin for o in self.observations if o.origin and o.status not in ("skipped", "rejected")})

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "forked": self.forked, "names": self.names,
                "observations": [o.to_json() for o in self.observations],
                "forks": {origin: [f.to_json() for f in forks] for origin, forks in self.forks.items()}}


def _fetch(source: LeafSource, start: int, end: int) -> list[bytes]:
    """Leaves ``[start, end)`` from ``source`` in pages; BadAnswer if it stops short or sends too many."""
    out: list[bytes] = []
    while start + len(out) < end:
        want = min(LEAVES_PER_PAGE, end - start - len(out))
        page = source.leaves(start + len(out), want)
        if not page or len(page) > want:
            raise BadAnswer(f"{source.name} has no entries from {start + len(out)} on, but the head has {end}")
        out.extend(page)
    return out


def _origin_of(note: object) -> str | None:
    """The origin a note claims (unverified), to say which log a refused head was about."""
    try:
        return Checkpoint.parse_body(parse_note(note).text).origin if isinstance(note, str) else None
    except InvalidRequest:
        return None


class Monitor:
    """Checks heads of other zoos' logs against this zoo's view (:class:`GossipStore`) and proves forks.

    ``keys`` are the pinned zoo keys (default: this zoo's own and every trusted peer zoo's); ``stop`` ends a
    round early (the server sets it on shutdown).
    """

    def __init__(self, cert: Certification, keys: Sequence[PublicKey] | None = None, *,
                 stop: threading.Event | None = None, timeout: float = TIMEOUT, api_key: str | None = None) -> None:
        """``api_key``: sent to the zoos it reads (``OPENZOO_REMOTE_API_KEY``), for zoos whose reads are guarded."""
        self.cert = cert
        self.api_key = api_key
        self.store: GossipStore = cert.gossip
        self.keys = list(keys) if keys is not None else cert.zoo_keys()
        self.stop = stop or threading.Event()
        self.timeout = timeout

    # -- one head --------------------------------------------------------------------------------
    def observe(self, note: object, source: str, sources: Sequence[LeafSource]) -> Observation:
        """Check one signed head against this zoo's view of its log, store it if it is sound, and prove a
        fork if it disagrees. ``source`` says where it came from (``direct:URL``, ``gossip:URL``…);
        ``sources`` are where its new leaves may be read."""
        try:
            head = verify_head(note, self.keys)
        except UnknownLog as exc:
            return Observation("skipped", source, str(exc), _origin_of(note))
        except (InvalidRequest, VerificationFailed) as exc:
            return Observation("rejected", source, f"refused a head: {exc}", _origin_of(note))
        if head.size > MAX_MIRROR_SIZE:
            return Observation("rejected", source, f"the head claims {head.size} entries; a monitor copies at most "
                               f"{MAX_MIRROR_SIZE}", head.origin, head.size)
        for _ in range(3):
            try:
                return self._place(head, source, sources)
            except Conflict:
                continue  # another monitor (the server's task, another CLI) extended the mirror meanwhile
        return Observation("unverified", source, "the mirror kept changing during the check; run it again",
                           head.origin, head.size)

    def _place(self, head: SignedHead, source: str, sources: Sequence[LeafSource]) -> Observation:
        origin, size = head.origin, head.size
        known = self.store.head(origin, size, head.root)
        if known is not None:
            self.store.sighted(head, source)
            if known.status == "forked":
                return Observation("fork", source, f"head of size {size} was already found forked", origin, size)
            return Observation("known", source, f"head of size {size} seen before", origin, size)
        mirrored = self.store.mirror_size(origin)
        if size <= mirrored:
            if self.store.root_at(origin, size) == head.root:
                self.store.accept(head, source)
                return Observation("ok", source, f"head of size {size} is a prefix of the {mirrored} entries "
                                   "copied", origin, size)
            return self._fork(head, source, self._evidence_from_mirror(head))
        problems: list[str] = []
        unreachable = bool(sources)
        for leaf_source in sources:
            try:
                found = self._beyond_mirror(head, source, leaf_source, mirrored)
            except TransferFailed as exc:
                problems.append(f"{leaf_source.name}: {exc}")
                continue
            except (BadAnswer, InvalidRequest, NotFound) as exc:
                problems.append(f"{leaf_source.name}: {exc}")
                unreachable = False
                continue
            if found is not None:
                return found
            unreachable = False
            problems.append(f"{leaf_source.name} served entries that do not hash to the signed root")
        status: Status = "unreachable" if unreachable else "unverified"
        return Observation(status, source, f"head of size {size} (beyond the {mirrored} entries copied) could not "
                           f"be checked: {'; '.join(problems) or 'no source for its entries'}", origin, size)

    def _beyond_mirror(self, head: SignedHead, source: str, leaf_source: LeafSource,
                       mirrored: int) -> Observation | None:
        """Check a head larger than the mirror with leaves from ``leaf_source``; None if they do not hash to
        its root (the source proves nothing either way)."""
        new = _fetch(leaf_source, mirrored, head.size)
        frontier = self.store.frontier(head.origin, mirrored)
        for offset, leaf in enumerate(new):
            merkle.append_to_frontier(frontier, mirrored + offset, leaf)
        if merkle.root_from_frontier(frontier) == head.root:
            self.store.accept(head, source, new, start=mirrored)
            return Observation("ok", source, f"grew from {mirrored} to {head.size} entries; the new entries hash "
                               "to the signed root", head.origin, head.size)
        if mirrored == 0:
            return None
        # The new entries do not extend our copy: does the source hold a whole other history the head signs?
        tree = merkle.MerkleTree()
        for leaf in [*_fetch(leaf_source, 0, mirrored), *new]:
            tree.append_leaf_hash(leaf)
        ours = self.store.consistent_head(head.origin, mirrored)
        if tree.root() != head.root or ours is None or tree.root(mirrored) == ours.root:
            return None
        evidence = prefix_evidence(self._signed(ours), head, tree.root(mirrored),
                                   tree.consistency_proof(mirrored, head.size))
        return self._fork(head, source, evidence)

    def _evidence_from_mirror(self, head: SignedHead) -> ForkEvidence:
        """Evidence against a head within the mirror whose root differs from the mirror's at its size.

        The largest consistent head has the mirror's size, so a consistent head at least as large exists.
        """
        other = self.store.consistent_head(head.origin, head.size)
        if other is None:  # pragma: no cover - excluded by the mirror's invariant
            raise Conflict(f"no consistent head of {head.origin} covers size {head.size}")
        if other.size == head.size:
            return same_size_evidence(self._signed(other), head)
        return prefix_evidence(head, self._signed(other), self.store.root_at(head.origin, head.size),
                               self.store.consistency_proof(head.origin, head.size, other.size))

    def _signed(self, stored: StoredHead) -> SignedHead:
        return verify_head(stored.note, self.keys)

    def _fork(self, head: SignedHead, source: str, evidence: ForkEvidence) -> Observation:
        new = self.store.record_fork(evidence, source, head)
        explained = verify_evidence(evidence, head.key).explain()
        return Observation("fork", source, explained + ("" if new else " (evidence already on record)"),
                           head.origin, head.size, evidence)

    def import_evidence(self, data: object, source: str) -> Observation:
        """Store fork evidence another zoo found, after checking it here against our pinned key."""
        try:
            evidence = evidence_from_json(data)
            key = pinned_key(evidence.origin, self.keys)
            fork = verify_evidence(evidence, key)
        except UnknownLog as exc:
            return Observation("skipped", source, f"fork evidence: {exc}")
        except (InvalidRequest, VerificationFailed) as exc:
            return Observation("rejected", source, f"refused fork evidence: {exc}")
        new = self.store.record_fork(evidence, source)
        return Observation("fork", source, fork.explain() + ("" if new else " (evidence already on record)"),
                           evidence.origin, fork.larger_size, evidence)

    # -- rounds ----------------------------------------------------------------------------------
    def check_zoo(self, url: str) -> MonitorReport:
        """One round against the zoo at ``url``: its head, the heads it gossips, the forks it knows."""
        report = MonitorReport(url)
        clients: dict[str, RegistryClient] = {}

        def client(base: str) -> RegistryClient:
            if base not in clients:
                clients[base] = RegistryClient(base, self.api_key, timeout=self.timeout)
            return clients[base]

        zoo = client(url)
        try:
            reachable, own = self._direct(report, zoo, url)
            if reachable and not self.stop.is_set():  # a zoo whose own log we do not watch may still gossip
                self._gossip(report, zoo, url, client)
            if own is not None:
                self._legacy(report, [RemoteLog(zoo)], only=own)
        finally:
            for c in clients.values():
                c.close()
        return self._finish(report)

    def check_self(self) -> MonitorReport:
        """Check this zoo's own latest head against the heads of its own log seen before."""
        report = MonitorReport("self")
        source = [LocalLog(self.cert.log)]
        report.observations.append(self.observe(self.cert.head(), "self", source))
        self._legacy(report, source, only=self.cert.log.origin)
        return self._finish(report)

    def _direct(self, report: MonitorReport, zoo: RegistryClient, url: str) -> tuple[bool, str | None]:
        """The zoo's own head: (whether the zoo answered, the origin of its log if we watch it)."""
        source = f"direct:{url}"
        asked_at = time.time()
        try:
            note = zoo.log_head()
        except TransferFailed as exc:
            report.observations.append(Observation("unreachable", source, str(exc)))
            return False, None
        except OpenzooError as exc:
            report.observations.append(Observation("rejected", source, f"no signed head: {exc}"))
            return True, None
        found = self.observe(note, source, [RemoteLog(zoo)])
        if found.status == "skipped":  # the zoo's own head unchecked is never "consistent"
            found = Observation("unverified", source, f"the zoo's own head cannot be checked: {found.detail}; "
                                "pin its key with 'openzoo keys trust NAME zoo.pub'", found.origin)
        report.observations.append(found)
        if found.origin is None or found.status in ("rejected", "unverified"):
            return True, None
        report.observations.extend(self._cosignatures(note, source, found.origin))
        self.store.set_url(found.origin, url)
        size = found.size or 0
        larger = next((h for h in self.store.heads(found.origin, "consistent", MAX_GOSSIP_HEADS)
                       if h.size > size and h.first_seen < asked_at), None)  # not one signed since we asked
        if found.status in ("ok", "known") and larger is not None:
            # Not a fork (the head is a prefix of what was seen), but the zoo hides entries it once signed:
            # a rollback or a freeze, e.g. to keep a revocation from pullers.
            report.observations.append(Observation(
                "stale", source, f"the zoo serves a head of size {found.size}, but it signed one of size "
                f"{larger.size} before: it is hiding its latest entries", found.origin, found.size))
        return True, found.origin

    def _cosignatures(self, note: str, source: str, origin: str) -> list[Observation]:
        """Check each witness cosignature on a zoo's head with the witness keys known here (the policy's and
        the witnesses this zoo asks); one that cannot be checked, or fails, is a problem, never ignored."""
        from openzoo.certify.cosignature import verify_cosignatures

        witnesses = self.cert.known_witnesses()
        mine = {k.key_id[:8] for k in self.keys}
        found: list[Observation] = []
        try:
            valid = {(c.witness.name, c.witness.hint) for c in verify_cosignatures(note, witnesses)}
            lines = parse_note(note).signatures
        except (InvalidRequest, VerificationFailed) as exc:
            return [Observation("rejected", source, f"a witness cosignature on the head is forged: {exc}", origin)]
        for sig in lines:
            if sig.name == origin or sig.key_hint.hex() in mine:
                continue  # the log's own signature lines
            if (sig.name, sig.key_hint) in valid:
                found.append(Observation("ok", source, f"cosignature by witness {sig.name} verifies", origin))
            else:
                found.append(Observation("unverified", source, f"cosignature by {sig.name} cannot be checked: its "
                                         "key is not known here (add it with 'openzoo certify policy --witness' "
                                         "or 'openzoo witness ask')", origin))
        return found

    def _gossip(self, report: MonitorReport, zoo: RegistryClient, url: str,
                client: Callable[[str], RegistryClient]) -> None:
        source = f"gossip:{url}"
        try:
            notes = zoo.gossip_heads()[:MAX_GOSSIP_HEADS]
            evidence = zoo.gossip_forks()
        except NotFound:
            report.observations.append(Observation("skipped", source, "the zoo does not gossip (an older openzoo)"))
            return
        except TransferFailed as exc:
            report.observations.append(Observation("unreachable", source, str(exc)))
            return
        except OpenzooError as exc:
            report.observations.append(Observation("rejected", source, f"refused its gossip: {exc}"))
            return

        def order(note: object) -> tuple[str, int]:
            try:
                cp = Checkpoint.parse_body(parse_note(note).text) if isinstance(note, str) else None
            except InvalidRequest:
                cp = None
            return ("", -1) if cp is None else (cp.origin, cp.size)

        for note in sorted(notes, key=order):  # ascending sizes: the copy grows a step at a time
            if self.stop.is_set():
                return
            origin = order(note)[0]
            sources: list[LeafSource] = []
            log_url = self.store.url(origin) if origin else None
            if origin == self.cert.log.origin:  # what the peer saw of this zoo's own log
                sources.append(LocalLog(self.cert.log))
            elif log_url is not None and log_url != url:
                sources.append(RemoteLog(client(log_url)))
            sources.append(PeerMirror(zoo, origin))
            report.observations.append(self.observe(note, source, sources))
        for data in evidence:
            report.observations.append(self.import_evidence(data, source))

    def _legacy(self, report: MonitorReport, sources: Sequence[LeafSource], only: str) -> None:
        """Fold in the one head per log that ``openzoo log monitor`` kept before gossip (``certify_monitor``)."""
        row = self.cert.conn.execute("SELECT checkpoint FROM certify_monitor WHERE origin = ?", (only,)).fetchone()
        if row is None:
            return
        found = self.observe(str(row[0]), "legacy", sources)
        report.observations.append(found)
        if found.status in ("ok", "known", "fork"):
            with self.cert.catalog.transaction() as conn:
                conn.execute("DELETE FROM certify_monitor WHERE origin = ?", (only,))

    def _finish(self, report: MonitorReport) -> MonitorReport:
        names = {origin_for(k): self.cert.key_name(k) for k in self.keys}
        for origin in report.origins():
            report.forks[origin] = self.store.forks(origin)
            if origin in names:
                report.names[origin] = names[origin]
        return report
