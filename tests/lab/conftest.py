"""Fixtures shared by lab test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.helpers import SpareLab, moto_server, spare_hot_warm_lab


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """A moto S3 server on loopback for the module (the stand-in for AWS S3); its URL."""
    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def spare_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpareLab]:
    """A second hot-warm lab, up for the session (of this xdist worker), down after."""
    with spare_hot_warm_lab(tmp_path_factory.mktemp("spare-lab") / "project") as made:
        yield made
