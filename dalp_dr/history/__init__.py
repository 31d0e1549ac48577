"""Drill history: every run, its spec snapshot, measurements and verdicts.

``open_store(url)`` picks the implementation from the URL: ``sqlite:///path`` (default) or
``postgresql://user@host:port/dbname`` (production; password from PGPASSWORD/.pgpass).
``open_history(settings)`` opens the configured store with its results directory (where
evidence is found) and its checkpointer (every seal signs a checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dalp_dr.checkpoints import Checkpointer, S3Witness
from dalp_dr.config import Settings
from dalp_dr.errors import ConfigError, NoHistory
from dalp_dr.history.backends import Backend, PostgresBackend, SqliteBackend
from dalp_dr.history.base import HistoryStore, Lease, RunSummary, Seal, SealObserver
from dalp_dr.history.store import SqlHistory


def open_store(url: str, *, migrate: bool = False, results_dir: Path | None = None,
               observer: SealObserver | None = None, create: bool = True) -> HistoryStore:
    """Open (and create) the store. The embedded SQLite store upgrades its schema on open;
    a shared PostgreSQL store only with ``migrate=True`` (``dalp-dr store migrate``).
    ``create=False`` (every read): an embedded store whose file does not exist raises
    NoHistory, and neither the file nor its directory is created."""
    backend: Backend
    if url.startswith("sqlite://"):  # sqlite:///abs/path or sqlite://relative/path
        path = Path(url.removeprefix("sqlite://"))
        if not create and not path.exists():
            raise NoHistory(url)
        backend = SqliteBackend(path)
    elif url.startswith(("postgresql://", "postgres://")):
        backend = PostgresBackend(url)
    else:
        raise ConfigError(f"unsupported history store URL {url.split('://')[0]}://...",
                          source="DALP_DR_STORE",
                          hint="use sqlite:///path/to/history.sqlite or postgresql://...")
    return SqlHistory(backend, migrate=migrate, results_dir=results_dir, observer=observer)


def checkpointer(settings: Settings,
                 on_problem: Callable[[str], None] | None = None) -> Checkpointer:
    """The configured checkpoint log (and S3 witness) signed with the history's key."""
    witness = None
    if settings.witness is not None:
        from dalp_dr import object_store

        w = settings.witness
        witness = S3Witness(w.bucket, w.prefix, w.retain_days, w.lock_mode,
                            # short: a seal waits on it (a witness that hangs is away)
                            object_store.client({"endpoint_url": w.endpoint_url,
                                               "region": w.region, "connect_timeout": 3,
                                               "read_timeout": 10, "attempts": 2}))
    return Checkpointer(settings.results_dir, settings.keys_dir, witness, on_problem)


def open_history(settings: Settings, *, migrate: bool = False,
                 on_problem: Callable[[str], None] | None = None,
                 create: bool = True) -> HistoryStore:
    """The configured store: evidence under the results directory, every seal signed into
    a checkpoint (``create``: see :func:`open_store`)."""
    return open_store(settings.store_url, migrate=migrate, results_dir=settings.results_dir,
                      observer=checkpointer(settings, on_problem), create=create)


__all__ = ["HistoryStore", "Lease", "RunSummary", "Seal", "checkpointer", "open_history",
           "open_store"]
