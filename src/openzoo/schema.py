"""The catalog's schema: every package's migrations in one ordered list, applied once at start-up.

Each package that keeps tables in the catalog defines its :class:`~openzoo.store.migrations.Step` next to
the code that uses the tables; this list is the one place that names them all, in the order they apply.
:class:`~openzoo.services.Services` opens the store with it. Add a step here when a package adds one.
"""

from __future__ import annotations

from pathlib import Path

from openzoo.audit import jobs as audit_jobs
from openzoo.certify import core as certify_core
from openzoo.certify import gossip_store, log, witness
from openzoo.finetune import dequant
from openzoo.finetune import jobs as finetune_jobs
from openzoo.registry import trust
from openzoo.store import migrations
from openzoo.store import responses as stored_responses
from openzoo.store.store import Store

__all__ = ["MIGRATIONS", "open_store"]

MIGRATIONS: tuple[migrations.Step, ...] = migrations.ordered((
    *migrations.STORE,  # 1 models, 2 history, 6 catalog identity
    log.MIGRATION,  # 5 the transparency log
    certify_core.MIGRATION,  # 100 certification requests, policies, pulled models
    gossip_store.MIGRATION,  # 110 other zoos' heads and fork evidence
    witness.MIGRATION,  # 163 C2SP witnessing: logs witnessed, this log's witnesses, cosignatures
    audit_jobs.MIGRATION,  # 200 audit jobs
    stored_responses.MIGRATION,  # 400 stored responses of /v1/responses
    dequant.MIGRATION,  # 300 dequantized weights cache
    finetune_jobs.MIGRATION,  # 301 fine-tune jobs
    trust.MIGRATION,  # 600 proofs of pulled models
))


def open_store(home: Path, catalog_url: str | None = None) -> Store:
    """The store under ``home`` with the whole schema applied (what ``Services.store`` opens)."""
    return Store(home, catalog_url, migrations=MIGRATIONS)
