import json
from pathlib import Path

from dalp_dr.journal import Journal, read_journal
from dalp_dr.redact import MASK, Redactor
from dalp_dr.results import HeartbeatSample
from tests.factories import at

SECRET = "s3cr3t-Pa55"


def test_known_and_pattern_secrets_are_masked() -> None:
    r = Redactor([SECRET])
    assert SECRET not in r.text(f"connecting with {SECRET}!")
    assert r.text("host=h password=hunter22 dbname=d") == f"host=h password={MASK} dbname=d"
    assert r.text("password='a b c' x=1") == f"password='{MASK}' x=1"
    assert r.text("postgresql://u:pw123@host/db") == f"postgresql://u:{MASK}@host/db"
    assert r.text("PGPASSWORD=zzz9 psql") == f"PGPASSWORD={MASK} psql"
    nested = r.scrub({"a": [SECRET, {"k": f"x{SECRET}y"}], SECRET: 1, "n": 3})
    assert SECRET not in json.dumps(nested)
    assert nested["n"] == 3


def test_journal_writes_each_event_atomically_and_redacted(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "run1", "run1", Redactor([SECRET]))
    journal.record("phase.started", phase="preflight", note=f"dsn password={SECRET}")
    journal.ansible_event("inject", {"event": "runner_on_ok",
                                     "event_data": {"res": {"stdout": SECRET}}})
    journal.heartbeat(HeartbeatSample(seq=1, sent_at=at(0), ended_at=at(0.01), acked=True))
    journal.heartbeat(HeartbeatSample(seq=2, sent_at=at(0.1), ended_at=at(0.2), acked=False,
                                      error=f"auth failed for {SECRET}"))
    # the heartbeat file is readable while the run is still going (flushed per sample)
    lines = (tmp_path / "run1" / "heartbeat.jsonl").read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [1, 2]
    journal.write_document("summary.txt", f"summary {SECRET}")
    journal.close()

    events = read_journal(tmp_path / "run1")
    assert [e["kind"] for e in events] == ["phase.started"]
    assert events[0]["seq"] == 1 and events[0]["run_id"] == "run1"
    files = [p for p in (tmp_path / "run1").rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")]
    assert (tmp_path / "run1/ansible/inject/000001-runner_on_ok.json").is_file()
    for path in files:
        assert SECRET not in path.read_text(), path


def test_files_a_playbook_fetched_are_redacted_and_digested(tmp_path: Path) -> None:
    import hashlib

    journal = Journal(tmp_path / "run1", "run1", Redactor([SECRET]))
    folder = journal.files_dir("verify")
    (folder / "sub").mkdir(parents=True)
    (folder / "watch.jsonl").write_text(f'{{"conn": "password={SECRET}"}}\n')
    (folder / "sub" / "plain.bin").write_bytes(b"\x00\xff no secret")
    (folder / "leak.bin").write_bytes(b"\x00\xff" + SECRET.encode())
    kept = journal.adopt_files("verify")
    journal.close()
    assert [k["file"] for k in kept] == ["files/verify/sub/plain.bin", "files/verify/watch.jsonl"]
    text = (folder / "watch.jsonl").read_text()
    assert SECRET not in text and MASK in text
    assert kept[1]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert not (folder / "leak.bin").exists()
    kinds = [e["kind"] for e in read_journal(tmp_path / "run1")]
    assert kinds == ["evidence.dropped", "evidence.files"]
    assert journal.adopt_files("inject") == []  # no files: nothing recorded
