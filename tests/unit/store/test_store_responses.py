"""Stored responses of /v1/responses: kept with their history, newest N only, deletable."""

from __future__ import annotations

from pathlib import Path

from openzoo.schema import MIGRATIONS
from openzoo.store.catalog import Catalog
from openzoo.store.responses import StoredResponses


def test_keep_get_delete_and_retention(tmp_path: Path) -> None:
    catalog = Catalog.open(str(tmp_path / "catalog.sqlite"), MIGRATIONS)
    try:
        kept = StoredResponses(catalog.connection, catalog.transaction, keep=3)
        for i in range(5):
            kept.save({"id": f"resp_{i}", "created_at": 100.0 + i, "output": [i]},
                      [{"role": "user", "content": f"{i}"}])
        assert kept.count() == 3
        assert kept.get("resp_0") is None and kept.get("resp_1") is None  # the oldest went first
        latest = kept.get("resp_4")
        assert latest is not None and latest.response["output"] == [4]
        assert latest.history == [{"role": "user", "content": "4"}]
        assert kept.delete("resp_4") and not kept.delete("resp_4")
        assert kept.get("resp_4") is None and kept.count() == 2
    finally:
        catalog.close()
