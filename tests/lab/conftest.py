"""Fixtures shared by lab test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.helpers import moto_server


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """A moto S3 server on loopback for the module (the stand-in for AWS S3); its URL."""
    with moto_server() as url:
        yield url
