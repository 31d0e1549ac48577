"""What a forged bundle can make verification spend before its signature is checked: a
pax header of megabytes and a directory nested a thousand levels deep end in one line."""

from __future__ import annotations

import tarfile
from pathlib import Path

from dalp_dr.export.verify import Trust, verify_bundle
from tests.factories import fill_history, signed_bundle


def test_a_huge_pax_header_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    archive, public = signed_bundle(fill_history(tmp_path), tmp_path)
    forged = tmp_path / "pax.tar.gz"
    with tarfile.open(archive) as genuine, \
            tarfile.open(forged, "w:gz", format=tarfile.PAX_FORMAT) as out:
        for member in genuine:
            data = genuine.extractfile(member)
            if member.name == "report.html":  # a comment of 4 MiB in its pax header
                member.pax_headers = {"comment": "x" * (4 << 20)}
            out.addfile(member, data)
    report = verify_bundle(forged, Trust.from_public_key(public))
    assert not report.ok
    assert "headers take more than" in str(report.problem)


def test_a_deeply_nested_directory_bundle_is_one_line(tmp_path: Path) -> None:
    archive, public = signed_bundle(fill_history(tmp_path), tmp_path)
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    deep = unpacked / "evidence"
    for _ in range(1100):  # deeper than Python's recursion limit
        deep = deep / "a"
        deep.mkdir()
    (deep / "x").write_bytes(b"")
    try:
        report = verify_bundle(unpacked, Trust.from_public_key(public))
        assert not report.ok and "not in the manifest" in str(report.problem)
    finally:  # removed level by level: a recursive cleanup would hit the same limit
        (deep / "x").unlink()
        for _ in range(1100):
            deep.rmdir()
            deep = deep.parent
