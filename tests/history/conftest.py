"""One history store fixture over every kind of store, as APScheduler's job store tests do:
each test in this package runs against SQLite (a file under tmp_path: a unit test) and
against PostgreSQL (a real server this package starts once, a fresh database per test:
a lab test, ``-m "not lab"`` leaves it out)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dalp_dr.history import HistoryStore
from tests.history.stores import PASSWORD, Kind, Place
from tests.lab.helpers import LABS, postgres_server

POSTGRES_ROOT = LABS / "history-contract"
POSTGRES_PORT = 55494

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for the whole session; its URL prefix."""
    with postgres_server(POSTGRES_ROOT, POSTGRES_PORT, ()) as url:
        yield url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


KINDS = [
    pytest.param(Kind.SQLITE, id="sqlite"),
    pytest.param(Kind.POSTGRESQL, id="postgresql",
                 marks=[pytest.mark.lab, pytest.mark.xdist_group("history-contract")]),
]


@pytest.fixture(params=KINDS)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    """An empty database of each kind: no history tables yet."""
    results = tmp_path / "results"
    if request.param is Kind.SQLITE:
        yield Place(Kind.SQLITE, f"sqlite:///{tmp_path / 'history.sqlite'}", results)
        return
    server: str = request.getfixturevalue("postgres_url")
    name = f"history_{next(_databases)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    yield Place(Kind.POSTGRESQL, f"{server}/{name}", results)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'drop database "{name}" with (force)')


@pytest.fixture
def store(place: Place) -> Iterator[HistoryStore]:
    """The store under test, opened on its empty database (closed after the test)."""
    opened = place.open()
    yield opened
    opened.close()
