"""Headless Chromium (Debian ``chromium``) printing a self-contained HTML page to PDF.

The page is written to a private temporary directory and printed from there with a
throwaway profile, every network name resolving to nothing (the report's own CSP forbids
fetches too), under a deadline; the PDF is checked, then written beside the destination and
renamed over it, so a failed print leaves no half file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from dalp_dr import private_files
from dalp_dr.errors import InvalidInput, PrintFailed

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DEADLINE = 120.0
"""seconds a print may take"""


def find_browser() -> str:
    """The browser's path; InvalidInput naming the missing tool when none is installed."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise InvalidInput("printing to PDF needs headless Chromium, and 'chromium' is not "
                       "installed", field="-o",
                       hint="install Debian's chromium (apt-get install chromium), or "
                            "export -o report.html and print it from a browser")


def command(browser: str, page: Path, pdf: Path, profile: Path) -> list[str]:
    return [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--disable-sync",
            "--disable-component-update", "--no-default-browser-check",
            "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
            "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()]


def print_to_pdf(html: str, destination: Path, *, deadline: float = DEADLINE,
                 browser: str | None = None) -> int:
    """Print ``html`` to ``destination`` (replaced whole, owner-only); its size in bytes.
    Raises InvalidInput without a browser, PrintFailed when the print fails or overruns
    ``deadline``."""
    exe = browser or find_browser()
    private_files.replaceable(destination)
    with tempfile.TemporaryDirectory(prefix="dalp-dr-pdf-") as work:
        root = Path(work)
        page, pdf = root / "report.html", root / "report.pdf"
        page.write_text(html, encoding="utf-8")
        proc = subprocess.Popen(command(exe, page, pdf, root / "profile"),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _out, errors = proc.communicate(timeout=deadline)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise PrintFailed(f"chromium did not print the report within {deadline:.0f}s"
                              ) from None
        data = pdf.read_bytes() if pdf.is_file() else b""
        if proc.returncode != 0 or not data.startswith(b"%PDF-"):
            last = (errors or "").strip().splitlines()[-1:] or ["no message"]
            raise PrintFailed(f"chromium did not print the report (exit {proc.returncode}): "
                              f"{last[0][:300]}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(f".{destination.name}.tmp")
    with os.fdopen(private_files.open_for_write(tmp), "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, destination)
    return len(data)


def _kill(proc: subprocess.Popen[str]) -> None:
    """The browser and every process it started (its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
