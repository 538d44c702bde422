"""Open a catalog database by URL: SQLite here, PostgreSQL through :mod:`.db_postgres` (imported only then).

Apart from :mod:`.db`, so the PostgreSQL driver module and the portable interface do not import each other.
"""

from __future__ import annotations

from openzoo.catalog_url import POSTGRES_SCHEMES, redact_url
from openzoo.errors import CatalogError
from openzoo.store.db import Database, SqliteDatabase, sqlite_path

__all__ = ["open_database"]


def open_database(url: str) -> Database:
    """Open ``sqlite:///PATH`` (or a plain path) or ``postgresql://...``; refuse anything else."""
    if url.startswith(POSTGRES_SCHEMES):
        from openzoo.store.db_postgres import PostgresDatabase

        return PostgresDatabase(url)
    path = sqlite_path(url)
    if path is None:
        raise CatalogError(f"unsupported catalog URL {redact_url(url)}",
                           hint="use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")
    return SqliteDatabase(path)
