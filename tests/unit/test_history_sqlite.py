from pathlib import Path

import pytest

from dalp_dr.history import open_store
from tests.history_contract import check_store_contract


def test_sqlite_keeps_the_history_contract(tmp_path: Path) -> None:
    check_store_contract(lambda: open_store(f"sqlite:///{tmp_path / 'h.sqlite'}"))


def test_unknown_store_scheme_is_invalid_input() -> None:
    from dalp_dr.errors import ConfigError

    with pytest.raises(ConfigError):
        open_store("mysql://x")
