"""Drill history: every run, its spec snapshot, measurements and verdicts.

``open_store(url)`` picks the implementation from the URL: ``sqlite:///path`` (default) or
``postgresql://user@host:port/dbname`` (production; password from PGPASSWORD/.pgpass).
"""

from __future__ import annotations

from pathlib import Path

from dalp_dr.errors import ConfigError
from dalp_dr.history.base import HistoryStore, Lease, RunSummary
from dalp_dr.history.sqlite import SqliteHistory


def open_store(url: str, *, migrate: bool = False) -> HistoryStore:
    """Open (and create) the store. The embedded SQLite store upgrades its schema on open;
    a shared PostgreSQL store only with ``migrate=True`` (``dalp-dr store migrate``)."""
    if url.startswith("sqlite://"):  # sqlite:///abs/path or sqlite://relative/path
        return SqliteHistory(Path(url.removeprefix("sqlite://")))
    if url.startswith(("postgresql://", "postgres://")):
        from dalp_dr.history.postgres import PostgresHistory

        return PostgresHistory(url, migrate=migrate)
    raise ConfigError(f"unsupported history store URL {url.split('://')[0]}://...",
                      source="DALP_DR_STORE",
                      hint="use sqlite:///path/to/history.sqlite or postgresql://...")


__all__ = ["HistoryStore", "Lease", "RunSummary", "open_store"]
