"""``export verify`` against hostile bundles (GitHub issue 14, items 2 and 3): trust comes only
from a key the verifier already has; a bundle is untrusted input (duplicate, unexpected,
unsafe or oversized members; wrong shapes signed by the trusted key; damaged archives) and
whatever is wrong ends in one line, never a traceback. Bundles are written by the real
writer (``tests.factories``) and then taken apart and repacked."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dalp_dr.commands import main
from dalp_dr.errors import InvalidInput
from dalp_dr.export import keys
from dalp_dr.export.bundle import MANIFEST, PUBLIC_KEY, SIGNATURE
from dalp_dr.export.verify import Trust, verify_bundle
from tests.factories import fill_history, signed_bundle

Members = dict[str, bytes]


# --- building and taking bundles apart --------------------------------------------------------


def members_of(archive: Path) -> Members:
    found: Members = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            fh = tar.extractfile(member)
            assert fh is not None
            found[member.name] = fh.read()
    return found


def raw_member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
               link: str = "") -> bytes:
    """One tar member as bytes (header and padded data), without an end-of-archive marker."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, 0o644, link
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    body = data if info.size else b""
    return info.tobuf(tarfile.GNU_FORMAT) + body + b"\0" * (-len(body) % tarfile.BLOCKSIZE)


def tar_bytes(members: list[tuple[str, bytes]], end: bool = True) -> bytes:
    data = b"".join(raw_member(name, content) for name, content in members)
    return data + (b"\0" * (2 * tarfile.BLOCKSIZE) if end else b"")


def pack(path: Path, members: list[tuple[str, bytes]] | Members) -> Path:
    items = list(members.items()) if isinstance(members, dict) else members
    path.write_bytes(gzip.compress(tar_bytes(items)))
    return path


def resign(members: Members, keydir: Path,
           manifest: Callable[[dict[str, object]], object] | bytes | None = None) -> Members:
    """Re-sign a member set with the key in ``keydir`` (and carry that key): the manifest is
    recomputed, then optionally replaced by whatever shape ``manifest`` makes of it."""
    private = keys.load_private(keydir)
    changed = dict(members)
    changed[PUBLIC_KEY] = keys.public_pem(private.public_key())
    document = json.loads(changed[MANIFEST])
    document["files"] = {name: hashlib.sha256(data).hexdigest()
                         for name, data in changed.items() if name not in (MANIFEST, SIGNATURE)}
    document["key_fingerprint"] = keys.fingerprint(private.public_key())
    if isinstance(manifest, bytes):
        text = manifest
    else:
        text = json.dumps(manifest(document) if manifest else document).encode()
    changed[MANIFEST] = text
    changed[SIGNATURE] = keys.sign(private, text)
    return changed


@pytest.fixture
def genuine(tmp_path: Path) -> tuple[Path, Path]:
    """(bundle.tar.gz, key directory of its signer)."""
    archive, _public = signed_bundle(fill_history(tmp_path), tmp_path)
    return archive, tmp_path / "keys"


@pytest.fixture
def attacker(tmp_path: Path) -> Path:
    keydir = tmp_path / "attacker"
    keys.init(keydir)
    return keydir


@pytest.fixture(autouse=True)
def _no_ambient_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the default trust is the local key directory: never the tester's own
    monkeypatch.delenv("DALP_DR_KEYS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DALP_DR_RESULTS", str(tmp_path / "results"))


def verify_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["export", "verify", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fingerprint_of(keydir: Path) -> str:
    return keys.fingerprint(keys.load_private(keydir).public_key())


def one_line(text: str) -> str:
    assert "Traceback" not in text
    assert text.strip() and "\n" not in text.strip(), text
    return text.strip()


# --- trust ------------------------------------------------------------------------------------


def test_the_local_key_verifies_a_genuine_bundle_and_provenance_is_printed(
        genuine: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    archive, keydir = genuine
    code, out, err = verify_cli(capsys, str(archive), "--keys", str(keydir))
    assert code == 0, err
    assert "bundle intact: 4 records" in out
    assert fingerprint_of(keydir) in out and f"local key {keydir}" in out
    assert "exported 20" in out and " by " in out and "with dalp-dr " in out
    monkeypatch.setenv("DALP_DR_KEYS", str(keydir))  # the default key directory
    assert verify_cli(capsys, str(archive))[0] == 0
    manifest = json.loads(members_of(archive)[MANIFEST])
    assert {"tool_version", "exporter", "exported_at", "controller"} <= set(manifest)


def test_a_bundle_resigned_by_another_key_names_both_fingerprints(
        genuine: tuple[Path, Path], attacker: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    archive, keydir = genuine
    changed = members_of(archive)
    changed["report.html"] = b"<html>all drills passed</html>"
    forged = pack(tmp_path / "forged.tar.gz", resign(changed, attacker))
    code, out, err = verify_cli(capsys, str(forged), "--keys", str(keydir))
    assert code == 1 and not out
    line = one_line(err)
    assert "NOT verified" in line and "not the trusted one" in line
    assert fingerprint_of(attacker) in line and fingerprint_of(keydir) in line


def test_a_bundle_signed_before_a_key_rotation_verifies_with_the_retired_key(
        genuine: tuple[Path, Path], attacker: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    archive, keydir = genuine
    old = fingerprint_of(keydir)
    keys.init(keydir, force=True)  # the old public key goes to retired/
    new = fingerprint_of(keydir)
    [retired] = (keydir / keys.RETIRED).glob("*.pem")
    report = verify_bundle(archive, Trust.from_key_dir(keydir))
    assert report.ok and report.authentic, report.problem
    assert report.key_fingerprint == report.trusted_fingerprint == old != new
    assert report.key_source == f"retired key {retired}"
    code, out, err = verify_cli(capsys, str(archive), "--keys", str(keydir))
    assert code == 0, err
    assert f"signed by the trusted key {old} (retired key {retired})" in out
    # signed after the rotation: the current key is the one named
    fresh = pack(tmp_path / "fresh.tar.gz", resign(members_of(archive), keydir))
    code, out, err = verify_cli(capsys, str(fresh), "--keys", str(keydir))
    assert code == 0 and f"{new} (local key {keydir / keys.PUBLIC})" in out, err
    # an unrelated key is still refused, naming the signer and every trusted key
    forged = pack(tmp_path / "forged.tar.gz", resign(members_of(archive), attacker))
    code, out, err = verify_cli(capsys, str(forged), "--keys", str(keydir))
    assert code == 1 and not out
    line = one_line(err)
    assert "NOT verified" in line and "not one of the trusted ones" in line
    assert f"signer {fingerprint_of(attacker)}" in line
    assert f"{new} (local key " in line and f"{old} (retired key {retired})" in line
    # --public-key and --fingerprint trust one key: the current one alone refuses the old bundle
    code, _, err = verify_cli(capsys, str(archive), "--public-key", str(keydir / keys.PUBLIC))
    assert code == 1 and "not the trusted one" in one_line(err) and old in err
    assert verify_cli(capsys, str(archive), "--fingerprint", new)[0] == 1
    assert verify_cli(capsys, str(archive), "--fingerprint", old)[0] == 0


def test_retired_keys_alone_or_beside_an_unreadable_one_are_trusted(
        genuine: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    archive, keydir = genuine
    old = fingerprint_of(keydir)
    keys.init(keydir, force=True)
    (keydir / keys.RETIRED / "junk.pem").write_bytes(b"not a key")
    (keydir / keys.PUBLIC).unlink()
    trust = Trust.from_key_dir(keydir)
    assert trust.fingerprints == {old} and "does not exist" in trust.source
    assert "junk.pem" in caplog.text
    assert verify_bundle(archive, trust).ok


def test_public_key_passes_the_genuine_bundle_only(
        genuine: tuple[Path, Path], attacker: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    archive, keydir = genuine
    forged = pack(tmp_path / "forged.tar.gz", resign(members_of(archive), attacker))
    real = str(keydir / keys.PUBLIC)
    code, out, _ = verify_cli(capsys, str(archive), "--public-key", real)
    assert code == 0 and f"--public-key {real}" in out
    code, _, err = verify_cli(capsys, str(forged), "--public-key", real)
    assert code == 1 and fingerprint_of(attacker) in one_line(err)
    # the attacker's key verifies the attacker's bundle: trust is the verifier's choice
    assert verify_cli(capsys, str(forged), "--public-key", str(attacker / keys.PUBLIC))[0] == 0


def test_fingerprint_pins_the_signer(genuine: tuple[Path, Path], attacker: Path,
                                     tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    archive, keydir = genuine
    real = fingerprint_of(keydir)
    assert verify_cli(capsys, str(archive), "--fingerprint", real)[0] == 0
    forged = pack(tmp_path / "forged.tar.gz", resign(members_of(archive), attacker))
    code, _, err = verify_cli(capsys, str(forged), "--fingerprint", real)
    assert code == 1 and real in err and fingerprint_of(attacker) in one_line(err)
    # the genuine signature, but the key that tells who signed it is gone
    keyless = members_of(archive)
    keyless[PUBLIC_KEY] = b"not a key"
    code, _, err = verify_cli(capsys, str(pack(tmp_path / "k.tar.gz", keyless)),
                              "--fingerprint", real)
    assert code == 1 and "not an Ed25519 key" in one_line(err)
    code, _, err = verify_cli(capsys, str(archive), "--fingerprint", "SHA256:nope")
    assert code == 2 and "not a key fingerprint" in one_line(err)
    code, _, err = verify_cli(capsys, str(archive), "--fingerprint", real, "--public-key",
                              str(keydir / keys.PUBLIC))
    assert code == 2 and "not both" in err


# an EC key on a curve cryptography refuses to load (UnsupportedAlgorithm, not ValueError)
ODD_KEY = (b"-----BEGIN PUBLIC KEY-----\n"
           b"MDIwEAYHKoZIzj0CAQYFK4EEAAYDHgAENlDbw/ZIhnDOPkXg4cs7bJmlzJMKmBPS\n"
           b"aB6ySg==\n-----END PUBLIC KEY-----\n")


def test_a_key_of_another_kind_is_one_line(genuine: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    archive, keydir = genuine
    odd = members_of(archive)
    odd[PUBLIC_KEY] = ODD_KEY
    code, _, err = verify_cli(capsys, str(pack(tmp_path / "odd.tar.gz", odd)), "--fingerprint",
                              fingerprint_of(keydir))
    assert code == 1 and "not an Ed25519 key" in one_line(err)
    (tmp_path / "odd.pem").write_bytes(ODD_KEY)
    code, _, err = verify_cli(capsys, str(archive), "--public-key", str(tmp_path / "odd.pem"))
    assert code == 2 and "not an Ed25519 public key" in one_line(err)


def test_without_a_trusted_key_a_valid_signature_is_not_enough(
        genuine: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    archive, keydir = genuine
    code, out, err = verify_cli(capsys, str(archive))  # HOME has no key directory
    assert code == 1 and "intact" not in out
    line = one_line(err)
    assert f"signature valid, signer NOT trusted: fingerprint {fingerprint_of(keydir)}" in line
    assert "does not exist" in line and "--public-key" in line
    report = verify_bundle(archive, Trust.from_key_dir(keydir.parent / "elsewhere"))
    assert not report.ok and not report.authentic and report.key_fingerprint is not None


# --- members ----------------------------------------------------------------------------------


def test_a_duplicate_member_is_refused(genuine: tuple[Path, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    archive, keydir = genuine
    real = members_of(archive)
    hidden = pack(tmp_path / "dup.tar.gz",
                  [("report.html", b"<html>fake</html>"), *real.items()])
    code, _, err = verify_cli(capsys, str(hidden), "--keys", str(keydir))
    assert code == 1 and "report.html: appears twice" in one_line(err)
    # the same, the second copy in a second gzip member (gzip and GNU tar read both)
    body = [(n, d) for n, d in real.items()]
    twice = tmp_path / "twice.tar.gz"
    twice.write_bytes(gzip.compress(tar_bytes(body, end=False))
                      + gzip.compress(tar_bytes([("report.html", b"<html>fake</html>")])))
    report = verify_bundle(twice, Trust.from_key_dir(keydir))
    assert not report.ok and "report.html: appears twice" in str(report.problem)


def test_a_member_behind_a_bad_header_or_after_the_end_is_refused(
        genuine: tuple[Path, Path], tmp_path: Path) -> None:
    archive, keydir = genuine
    real = list(members_of(archive).items())
    trust = Trust.from_key_dir(keydir)
    fake = raw_member("report.html", b"<html>fake</html>")
    for name, stream in (
            ("skipped.tar.gz", tar_bytes(real, end=False) + b"\x01" * 512 + fake + b"\0" * 1024),
            ("after-end.tar.gz", tar_bytes(real) + fake + b"\0" * 1024),
            ("cut-header.tar.gz", tar_bytes(real, end=False) + fake[:300])):
        path = tmp_path / name
        path.write_bytes(gzip.compress(stream))
        report = verify_bundle(path, trust)
        assert not report.ok and "archive damaged" in str(report.problem), name


@pytest.mark.parametrize(("name", "kind", "expected"), [
    ("notes.txt", tarfile.REGTYPE, "notes.txt: unexpected member"),
    ("evidence/run.txt", tarfile.REGTYPE, "evidence/run.txt: unexpected member"),
    ("/records.json", tarfile.REGTYPE, "absolute path"),
    ("../records.json", tarfile.REGTYPE, "not a plain relative path"),
    ("evidence/r/../../records.json", tarfile.REGTYPE, "not a plain relative path"),
    ("evidence/r/a\x1b[2Jb", tarfile.REGTYPE, "control characters"),
    ("evidence/r/\u202eexe.txt", tarfile.REGTYPE, "control characters"),
    ("evidence/r/a\\b", tarfile.REGTYPE, "backslashes"),
    ("evidence/r/link", tarfile.SYMTYPE, "evidence/r/link: a link"),
    ("evidence/r/hard", tarfile.LNKTYPE, "evidence/r/hard: a link"),
    ("evidence/r/fifo", tarfile.FIFOTYPE, "not a regular file"),
    ("tmp", tarfile.DIRTYPE, "tmp/: unexpected directory"),
])
def test_unexpected_or_unsafe_members_are_refused(
        genuine: tuple[Path, Path], tmp_path: Path, name: str, kind: bytes,
        expected: str) -> None:
    archive, keydir = genuine
    stream = tar_bytes(list(members_of(archive).items()), end=False)
    stream += raw_member(name, b"x", kind, link="records.json") + b"\0" * 1024
    path = tmp_path / "odd.tar.gz"
    path.write_bytes(gzip.compress(stream))
    report = verify_bundle(path, Trust.from_key_dir(keydir))
    assert not report.ok and expected in str(report.problem)
    assert "\x1b" not in str(report.problem)


def test_oversized_small_members_are_refused_before_they_are_read(
        genuine: tuple[Path, Path], tmp_path: Path) -> None:
    archive, keydir = genuine
    real = members_of(archive)
    real[SIGNATURE] = b"A" * 4096
    report = verify_bundle(pack(tmp_path / "big.tar.gz", real), Trust.from_key_dir(keydir))
    assert not report.ok and "manifest.json.sig: 4096 bytes, more than" in str(report.problem)


def test_a_directory_bundle_with_a_symlink_is_refused(genuine: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    archive, keydir = genuine
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    trust = Trust.from_key_dir(keydir)
    assert verify_bundle(unpacked, trust).ok
    outside = tmp_path / "outside.html"
    shutil.move(unpacked / "report.html", outside)
    os.symlink(outside, unpacked / "report.html")  # same content, but not in the bundle
    report = verify_bundle(unpacked, trust)
    assert not report.ok and "report.html: a symbolic link" in str(report.problem)
    os.unlink(unpacked / "report.html")
    os.mkfifo(unpacked / "report.html")  # never opened (it would block)
    report = verify_bundle(unpacked, trust)
    assert not report.ok and "report.html: not a regular file" in str(report.problem)


# --- wrong shapes, signed by the trusted key ----------------------------------------------------


def _records(edit: Callable[[dict[str, object]], object]) -> Callable[[Members], Members]:
    def change(members: Members) -> Members:
        changed = dict(members)
        changed["records.json"] = json.dumps(edit(json.loads(members["records.json"]))).encode()
        return changed
    return change


def _first_record(edit: Callable[[dict[str, object]], None]) -> Callable[[Members], Members]:
    def go(document: dict[str, object]) -> object:
        records = document["records"]
        assert isinstance(records, list)
        edit(records[0])
        return document
    return _records(go)


SHAPES: list[tuple[str, Callable[[Members], Members],
                   Callable[[dict[str, object]], object] | bytes | None, str]] = [
    ("files is a list", dict, lambda m: m | {"files": list(m["files"])},  # type: ignore
     "manifest.json: files: Input should be an object"),
    ("no chain head", dict, lambda m: {k: v for k, v in m.items() if k != "chain_head"},
     "manifest.json: chain_head: Field required"),
    ("records is a string", dict, lambda m: m | {"records": "4"},
     "manifest.json: records: Input should be a valid integer"),
    ("a JSON array", dict, b"[]", "manifest.json: Input should be an object"),
    ("not JSON", dict, b"\xff\xfe{", "manifest.json: Invalid JSON"),
    ("a digest that is no digest", dict,
     lambda m: m | {"files": {**m["files"], "runs.csv": "zz"}},  # type: ignore
     "manifest.json: files.runs.csv: String should match pattern"),
    ("a name outside the layout", dict,
     lambda m: m | {"files": {**m["files"], "../../etc/passwd": "0" * 64}},  # type: ignore
     "manifest.json: files: Value error, '../../etc/passwd': not a plain relative path"),
    ("records.json an array", _records(lambda d: []), None,
     "records.json: Input should be an object"),
    ("records not a list", _records(lambda d: d | {"records": {"a": 1}}), None,
     "records.json: records: Input should be a valid array"),
    ("a chain entry without seq", _first_record(lambda r: r["chain"].pop("seq")),  # type: ignore
     None,
     "records.json: records.0.chain.seq: Field required"),
    ("spec_json a number", _first_record(lambda r: r.update(spec_json=7)), None,
     "records.json: records.0.spec_json: Input should be a valid string"),
    ("result a list", _first_record(lambda r: r.update(result=[1])), None,
     "records.json: records.0.result: Input should be an object"),
]


@pytest.mark.parametrize(("members", "manifest", "expected"),
                         [(m, f, e) for _, m, f, e in SHAPES], ids=[s[0] for s in SHAPES])
def test_a_wrong_shape_signed_by_the_trusted_key_is_one_line(
        genuine: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        members: Callable[[Members], Members],
        manifest: Callable[[dict[str, object]], object] | bytes | None, expected: str) -> None:
    archive, keydir = genuine
    shaped = resign(members(members_of(archive)), keydir, manifest)
    code, out, err = verify_cli(capsys, str(pack(tmp_path / "shape.tar.gz", shaped)),
                                "--keys", str(keydir))
    assert code == 1 and not out
    line = one_line(err)
    assert line.startswith("error: bundle NOT intact: ") and expected in line, line


def test_a_truncated_or_foreign_file_is_one_line(
        genuine: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive, keydir = genuine
    data = archive.read_bytes()
    for name, content, code in (("half.tar.gz", data[: len(data) // 2], 1),
                                ("head.tar.gz", data[:20], 1),
                                ("plain.tar.gz", tar_bytes([("records.json", b"{}")]), 2),
                                ("text.tar.gz", gzip.compress(b"hello " * 200), 2),
                                ("empty.tar.gz", b"", 2)):
        path = tmp_path / name
        path.write_bytes(content)
        got, out, err = verify_cli(capsys, str(path), "--keys", str(keydir))
        assert got == code and not out, (name, err)
        one_line(err)
    bad_signature = members_of(archive)
    bad_signature[SIGNATURE] = b"%%% not base64 %%%\n"
    got, _, err = verify_cli(capsys, str(pack(tmp_path / "sig.tar.gz", bad_signature)),
                             "--keys", str(keydir))
    assert got == 1 and "manifest.json.sig: not an Ed25519 signature" in one_line(err)
    assert verify_cli(capsys, str(tmp_path / "nothing.tar.gz"), "--keys", str(keydir))[0] == 2


# --- whatever the archive, a report or InvalidInput ------------------------------------------


@pytest.fixture(scope="module")
def genuine_members(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[str, bytes]],
                                                                       Trust, Path]:
    base = tmp_path_factory.mktemp("fuzz")
    archive, public = signed_bundle(fill_history(base), base)
    return list(members_of(archive).items()), Trust.from_public_key(public), base


NAMES = st.sampled_from(["records.json", "report.html", "manifest.json", "manifest.json.sig",
                         "public-key.pem", "evidence/r/x", "evidence", "x", "/abs", "../up",
                         "evidence/r/../x", "evidence//x", "a\x00b"])
KINDS = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                         tarfile.FIFOTYPE, tarfile.CHRTYPE])


@st.composite
def archives(draw: st.DrawFn, genuine: list[tuple[str, bytes]]) -> tuple[bytes, bool | None]:
    """(archive bytes, whether it holds exactly the genuine members: None when that
    depends on how a changed header byte is read)."""
    if draw(st.integers(0, 9)) == 0:  # bytes that are (nearly) anything
        prefix = draw(st.sampled_from([b"", b"\x1f\x8b", b"\x1f\x8b\x08\x00"]))
        return prefix + draw(st.binary(max_size=600)), False
    original = [raw_member(name, data) for name, data in genuine]
    chunks, sizes = list(original), [len(data) for _, data in genuine]
    names = [name for name, _ in genuine]
    # a changed header byte or a directory entry: may or may not matter
    unsure = False
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["drop", "duplicate", "flip", "flip-header", "insert"]))
        at = draw(st.integers(0, len(chunks) - 1)) if chunks else 0
        if not chunks:
            op = "insert"
        if op == "drop":
            chunks.pop(at), sizes.pop(at), names.pop(at)
        elif op == "duplicate":
            where = draw(st.integers(0, len(chunks)))
            chunks.insert(where, chunks[at])
            sizes.insert(where, sizes[at])
            names.insert(where, names[at])
        elif op in ("flip", "flip-header"):
            member = bytearray(chunks[at])
            data = op == "flip" and sizes[at] > 0
            where = draw(st.integers(tarfile.BLOCKSIZE, tarfile.BLOCKSIZE + sizes[at] - 1)
                         if data else st.integers(0, tarfile.BLOCKSIZE - 1))
            member[where] ^= draw(st.integers(1, 255))
            chunks[at] = bytes(member)
            unsure = unsure or not data
        else:
            kind, name = draw(KINDS), draw(NAMES)
            chunks.insert(at, raw_member(name, draw(st.binary(max_size=64)), kind,
                                         link="records.json"))
            sizes.insert(at, 0)
            names.insert(at, name)
            unsure = unsure or kind == tarfile.DIRTYPE
    order = draw(st.permutations(range(len(chunks))))
    stream = b"".join(chunks[i] for i in order) + b"\0" * 1024
    blob = gzip.compress(stream, compresslevel=1)
    cut = draw(st.one_of(st.none(), st.integers(0, max(len(blob) - 1, 0))))
    tail = draw(st.one_of(st.just(b""), st.binary(max_size=32)))
    blob = (blob if cut is None else blob[:cut]) + tail
    if cut is not None or tail.strip(b"\0"):
        return blob, False
    if sorted(chunks) == sorted(original):
        return blob, True
    return blob, None if unsure else False


FUZZED = itertools.count()


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_archive_gives_a_report_or_invalid_input(
        genuine_members: tuple[list[tuple[str, bytes]], Trust, Path],
        data: st.DataObject) -> None:
    members, trust, base = genuine_members
    blob, intact = data.draw(archives(members))
    path = base / f"fuzz-{next(FUZZED)}.tar.gz"
    path.write_bytes(blob)
    try:
        report = verify_bundle(path, trust)
    except InvalidInput:
        assert not intact
        return
    finally:
        path.unlink()
    if intact is not None:
        assert report.ok == intact, report.problem
    assert report.ok or (report.problem and "\n" not in report.problem)
