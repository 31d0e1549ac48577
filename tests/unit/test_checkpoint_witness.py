"""The checkpoint witness may be away: a seal while it is unreachable is still signed into
the local log (which alone decides what the seal extends), and the checkpoints it missed are
published with the next seal once it is back. The witness on S3 itself (Object Lock, moto)
is tests/lab/test_86_checkpoint_witness.py; a drill with it down, tests/lab/test_26."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import cast

from dalp_dr.checkpoints import Checkpointer
from dalp_dr.checkpoints.model import Checkpoint, Read, known
from dalp_dr.checkpoints.sources import S3Witness
from dalp_dr.errors import ObjectStoreError
from dalp_dr.export import keys
from dalp_dr.history import open_store
from dalp_dr.results import Outcome, RunResult
from tests.factories import sealed_runs


class FakeWitness:
    """Fake of dalp-dr's S3Witness (its S3 side is lab-tested): checkpoints in memory;
    while ``down``, every call fails as an unreachable endpoint's does."""

    url = "s3://fake-witness/history"

    def __init__(self) -> None:
        self.held: dict[int, Checkpoint] = {}
        self.down = False

    def _reachable(self) -> None:
        if self.down:
            raise ObjectStoreError(f"checkpoint witness {self.url}: fake: connection refused")

    def publish(self, checkpoint: Checkpoint, now: datetime | None = None) -> None:
        self._reachable()
        self.held[checkpoint.seq] = checkpoint

    def read(self) -> Read:
        self._reachable()
        return Read(source=self.url, claims=[known(c, self.url) for c in self.held.values()],
                    unreadable=[], present=bool(self.held))


def logged(results: Path) -> list[int]:
    lines = (results / "checkpoints.jsonl").read_text().splitlines()
    return [json.loads(line)["seq"] for line in lines if line.strip()]


def test_checkpoints_missed_while_the_witness_was_down_are_published_next(
        tmp_path: Path) -> None:
    keys.init(tmp_path / "keys")
    results = tmp_path / "results"
    witness = FakeWitness()
    problems: list[str] = []
    store = open_store(f"sqlite:///{tmp_path / 'history.sqlite'}", results_dir=results,
                       observer=Checkpointer(results, tmp_path / "keys",
                                             cast(S3Witness, witness), problems.append))

    def record(run: RunResult) -> None:
        store.begin(run.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None}),
                    "{}")
        store.finish(run)

    first, second, third = sealed_runs(tmp_path)
    try:
        record(first)
        assert sorted(witness.held) == [1] and problems == []

        witness.down = True
        record(second)
        assert logged(results) == [1, 2]  # signed: the local log alone said what it extends
        assert sorted(witness.held) == [1]
        assert any("checkpoint #2 not witnessed in s3://fake-witness/history yet" in p
                   for p in problems), problems

        witness.down = False
        record(third)
        assert logged(results) == [1, 2, 3]
        assert sorted(witness.held) == [1, 2, 3]  # the one it missed, then its own
    finally:
        store.close()
