from datetime import timedelta

import pytest

from dalp_dr.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("100ms", timedelta(milliseconds=100)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5s", timedelta(milliseconds=1500)),
        ("2d", timedelta(days=2)),
        (" 8h ", timedelta(hours=8)),
    ],
)
def test_parses(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "5mins", "m5", "1h30", "-5m", "5m-",
                                  "99999999999d", "9" * 400 + "s"])  # past timedelta: ValueError
def test_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_negative_is_named() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration("-30s")


def test_format() -> None:
    assert format_duration(0.2134) == "0.213s"
    assert format_duration(timedelta(minutes=30)) == "30m00s"
    assert format_duration(7200) == "2h00m"
    assert format_duration(-0.5) == "-0.500s"
    assert format_duration(None) == "-"
    assert (format_duration(59.9996), format_duration(59.9994)) == ("1m00s", "59.999s")
