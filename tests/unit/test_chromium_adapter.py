"""The PDF printer's failure paths with stand-in browsers (small scripts taking Chromium's
command line): a browser that hangs is killed at the deadline, one that writes no PDF is a
failure, and neither leaves anything at the destination."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dalp_dr.adapters.chromium import print_to_pdf
from dalp_dr.errors import PrintFailed


def stand_in(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-chromium"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_a_browser_that_hangs_is_killed_at_the_deadline(tmp_path: Path) -> None:
    browser = stand_in(tmp_path, "sleep 30")
    started = time.monotonic()
    with pytest.raises(PrintFailed, match="did not print the report within 1s"):
        print_to_pdf("<p>x</p>", tmp_path / "r.pdf", deadline=1, browser=browser)
    assert time.monotonic() - started < 10
    assert not (tmp_path / "r.pdf").exists()


def test_a_browser_that_writes_no_pdf_fails_and_keeps_the_old_file(tmp_path: Path) -> None:
    (tmp_path / "r.pdf").write_bytes(b"%PDF-old")
    browser = stand_in(tmp_path, "echo 'GPU process crashed' >&2; exit 0")
    with pytest.raises(PrintFailed, match=r"exit 0.*GPU process crashed"):
        print_to_pdf("<p>x</p>", tmp_path / "r.pdf", browser=browser)
    assert (tmp_path / "r.pdf").read_bytes() == b"%PDF-old"


def test_the_pdf_the_browser_printed_replaces_the_destination(tmp_path: Path) -> None:
    # the stand-in writes what --print-to-pdf=FILE names, as Chromium does
    browser = stand_in(tmp_path, 'for a; do case "$a" in --print-to-pdf=*) '
                                 'printf "%%PDF-1.4 printed" > "${a#--print-to-pdf=}";; esac; '
                                 'done')
    size = print_to_pdf("<p>x</p>", tmp_path / "out" / "r.pdf", browser=browser)
    assert (tmp_path / "out" / "r.pdf").read_bytes() == b"%PDF-1.4 printed" and size == 16
    assert (tmp_path / "out" / "r.pdf").stat().st_mode & 0o077 == 0
