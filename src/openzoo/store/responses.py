"""Stored responses of the OpenAI Responses API (``store: true``), kept in the catalog.

A response is kept with the input items that led to it (those of the responses it continues
included), so ``previous_response_id`` rebuilds the whole conversation from one row. Only the newest
``keep`` responses are kept (``OPENZOO_RESPONSES_KEEP``); older ones are deleted as new ones arrive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from openzoo.store import migrations
from openzoo.store.db import Database
from openzoo.store.migrations import run_script

__all__ = ["MIGRATION", "StoredResponse", "StoredResponses"]


def _m400(conn: Database) -> None:
    run_script(
        conn,
        """
        CREATE TABLE api_responses (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            response TEXT NOT NULL,
            history TEXT NOT NULL
        );
        CREATE INDEX api_responses_created ON api_responses(created_at)
        """,
    )


MIGRATION = migrations.Step(400, "api: stored responses of /v1/responses", _m400)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response object as the API returned it, and the input items it answered (whole history)."""

    response: dict[str, Any]
    history: list[dict[str, Any]]


class StoredResponses:
    """The catalog's table of stored responses; writes go through the catalog's transaction."""

    def __init__(self, conn: Database, transaction: Callable[[], AbstractContextManager[Database]],
                 keep: int) -> None:
        self._conn = conn
        self._transaction = transaction
        self.keep = keep

    def save(self, response: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Keep a response, then delete the oldest beyond ``keep``."""
        with self._transaction() as tx:
            tx.execute("INSERT INTO api_responses(id, created_at, response, history) VALUES (?, ?, ?, ?)",
                       (response["id"], float(response.get("created_at") or time.time()),
                        json.dumps(response), json.dumps(history)))
            row = tx.execute("SELECT created_at FROM api_responses ORDER BY created_at DESC, id DESC "
                             "LIMIT 1 OFFSET ?", (self.keep,)).fetchone()
            if row is not None:
                tx.execute("DELETE FROM api_responses WHERE created_at <= ? AND id <> ?",
                           (float(row[0]), response["id"]))

    def get(self, response_id: str) -> StoredResponse | None:
        row = self._conn.execute("SELECT response, history FROM api_responses WHERE id = ?",
                                 (response_id,)).fetchone()
        if row is None:
            return None
        return StoredResponse(json.loads(row[0]), json.loads(row[1]))

    def delete(self, response_id: str) -> bool:
        with self._transaction() as tx:
            return tx.execute("DELETE FROM api_responses WHERE id = ?", (response_id,)).rowcount > 0

    def count(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM api_responses").fetchone()
        return int(row[0]) if row else 0
