"""Which store a URL opens."""

from __future__ import annotations

import pytest

from dalp_dr.errors import ConfigError
from dalp_dr.history import open_store


@pytest.mark.parametrize("url", ["mysql://x", "sqlite:", "/var/lib/history.sqlite"])
def test_an_unknown_store_url_is_invalid_configuration(url: str) -> None:
    with pytest.raises(ConfigError, match="unsupported history store URL"):
        open_store(url)
