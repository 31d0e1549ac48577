"""Library errors carry flags and hint keys; the CLI's table words them."""

from __future__ import annotations

import string
from collections.abc import Iterator

import pytest

from dalp_dr import errors
from dalp_dr.commands import hints
from dalp_dr.errors import (
    ConfigError,
    Flag,
    HintKey,
    InvalidInput,
    NeutralRenderer,
    StoreError,
    TamperedHistory,
    use_renderer,
)
from dalp_dr.export.archive import Target
from dalp_dr.export.trust import Trust


@pytest.fixture
def neutral() -> Iterator[None]:
    before = errors.renderer()
    use_renderer(NeutralRenderer())
    yield
    use_renderer(before)


@pytest.fixture
def cli_words() -> Iterator[None]:
    before = errors.renderer()
    hints.install()
    yield
    use_renderer(before)


def test_every_flag_and_hint_key_has_its_words() -> None:
    assert set(hints.FLAG_NAMES) == set(Flag) and set(hints.HINT_TEXTS) == set(HintKey)
    for key, text in hints.HINT_TEXTS.items():
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        assert fields <= {"known", "topology", "run_id", "package"}, (key, fields)


def test_an_error_reads_in_the_cli_words(cli_words: None) -> None:
    with pytest.raises(InvalidInput) as info:
        Target.parse("bucket/prefix")
    assert str(info.value) == "--to-s3: 'bucket/prefix' is not an s3:// URL (s3://bucket/prefix)"
    assert hints.hint_text(info.value) == "s3://bucket/prefix"
    known = InvalidInput("x: not in the history", flag=Flag.DRILL,
                         hint_key=HintKey.KNOWN_VALUES, hint_params={"known": "a, b"})
    assert str(known) == "--drill: x: not in the history (known: a, b)"
    history = TamperedHistory("history does not verify", hint_key=HintKey.PIN_HISTORY)
    assert "'dalp-dr history checkpoint --sign'" in str(history)


def test_without_the_cli_an_error_names_no_command_line(neutral: None) -> None:
    with pytest.raises(InvalidInput) as info:
        Trust.from_fingerprint("SHA256:short")
    text = str(info.value)
    assert "fingerprint" in text and "--" not in text and "dalp-dr" not in text
    assert hints.hint_text(info.value) == hints.HINT_TEXTS[HintKey.FINGERPRINT_FORMAT]


def test_hint_text_falls_back_to_the_plain_hint() -> None:
    assert hints.hint_text(ConfigError("bad", hint="a duration such as 60s")) == \
        "a duration such as 60s"
    assert hints.hint_text(StoreError("cannot open")) is None
    assert hints.hint_text(ConfigError("bad")) is None
