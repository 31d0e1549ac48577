"""Finding 8: YAML and messages. A few hundred bytes of aliases ("billion laughs") under
``topology:`` cost seconds and hundreds of megabytes (the error message showed the expanded
value) and one more level tens of gigabytes, in the CLI and in the scheduler that re-reads
drill files every sync; duplicate keys were accepted (the last one won). Now: the alias
expansion is measured before anything is built and refused past a small budget, duplicate
keys are refused naming the key and its line, and every message shows values short."""

from __future__ import annotations

import itertools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dalp_dr.errors import SpecError
from dalp_dr.spec import parse_drill
from tests.factories import MINIMAL_DRILL

ROOT = Path(__file__).resolve().parents[2]

VALID = MINIMAL_DRILL


def bomb(levels: int, width: int = 10) -> str:
    """A drill whose topology is a billion-laughs list: ``width ** levels`` strings."""
    names = "abcdefghijklmnop"[:levels]
    lines = ["topology:", "- &a [" + ",".join(["lol"] * width) + "]"]
    for previous, name in itertools.pairwise(names):
        lines.append(f"- &{name} [" + ",".join([f"*{previous}"] * width) + "]")
    return VALID.replace("topology: hot-warm\n", "\n".join(lines) + "\n")


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_drill(text, source="drills/x.yaml")
    return info.value


def parse_in_a_bounded_process(text: str) -> subprocess.CompletedProcess[str]:
    """Parse in a child with 2 GiB of address space and a minute: before the fix the bomb
    ran out of either (a MemoryError, a kill or a time-out), which fails the test instead of
    the machine."""
    code = ("import json, sys, time\n"
            "from dalp_dr.errors import SpecError\n"
            "from dalp_dr.spec import parse_drill\n"
            "start = time.monotonic()\n"
            "try:\n"
            "    parse_drill(sys.stdin.read(), source='drills/bomb.yaml')\n"
            "    message = None\n"
            "except SpecError as exc:\n"
            "    message = str(exc)\n"
            "print(json.dumps({'message': message, 'seconds': time.monotonic() - start}))\n")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    try:
        return subprocess.run([sys.executable, "-c", code], input=text, capture_output=True,
                              text=True, timeout=60, cwd=ROOT, preexec_fn=limit, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("parsing the alias bomb did not finish within a minute")


@pytest.mark.parametrize("levels", [7, 8, 9])
def test_an_alias_bomb_under_topology_is_refused_fast_with_a_short_message(levels: int
                                                                          ) -> None:
    text = bomb(levels)
    assert len(text.encode()) < 700  # a few hundred bytes standing for 10**levels values
    proc = parse_in_a_bounded_process(text)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = json.loads(proc.stdout)
    message = outcome["message"]
    assert message is not None and message.startswith("drills/bomb.yaml"), message
    assert len(message) < 500, message[:1000]
    assert "aliases" in message, message
    assert outcome["seconds"] < 5


def test_a_modest_use_of_aliases_and_merge_keys_still_loads() -> None:
    text = VALID.replace("  inject: {playbook: p.yml}\n",
                         "  inject: &phase {playbook: p.yml, vars: {dalp_lost_site: a}}\n"
                         "  recover:\n    <<: *phase\n    timeout: 2m\n")
    spec = parse_drill(text, source="drills/x.yaml")
    assert spec.phases.recover is not None and spec.phases.recover.vars == {"dalp_lost_site":
                                                                          "a"}


def test_a_recursive_alias_is_refused() -> None:
    error = error_of(VALID.replace("topology: hot-warm", "topology: &t [*t]"))
    assert "refers to a value that contains it" in str(error)


@pytest.mark.parametrize(("text", "key", "field", "line"), [
    (VALID.replace("owner: sre\n", "owner: sre\nowner: mallory\n"), "owner", "owner", 5),
    (VALID.replace("{rto: 30m, rpo: 5m}", "{rto: 30m, rpo: 5m, rto: 9999h}"), "rto",
     "objectives.rto", 5),
    (VALID.replace("  verify: {playbook: p.yml}\n",
                   "  verify: {playbook: p.yml}\n  verify: {playbook: evil.yml}\n"),
     "verify", "phases.verify", 12),
    (VALID.replace("  inject: {playbook: p.yml}",
                   "  inject: {playbook: p.yml, vars: {a: 1, 'a': 2}}"), "a",
     "phases.inject.vars.a", 10),
], ids=["top-level", "flow-mapping", "phase", "quoted-and-plain"])
def test_duplicate_keys_are_refused_naming_the_key_and_its_line(text: str, key: str,
                                                                field: str, line: int) -> None:
    error = error_of(text)
    assert error.source == "drills/x.yaml"
    assert error.field == field, error
    assert f"duplicate key '{key}' at line {line}" in str(error), error


def test_keys_that_differ_only_in_type_are_not_duplicates() -> None:
    text = VALID.replace("  inject: {playbook: p.yml}",
                         "  inject: {playbook: p.yml, vars: {dalp_a: 1, dalp_b: 1}}")
    assert parse_drill(text, source="x").phases.inject.vars == {"dalp_a": 1, "dalp_b": 1}


@pytest.mark.parametrize("text", [
    VALID.replace("topology: hot-warm", "topology: " + "x" * 100_000),
    VALID.replace("topology: hot-warm", "topology: [" + ", ".join(["y" * 100] * 2000) + "]"),
    VALID + "z" * 100_000 + ": 1\n",
    VALID.replace("name: x", "name: " + "N" * 100_000),
    VALID.replace("{from_inventory: dsn}", "{from_inventory: dsn}\nchecks: [{name: c, sql: '"
                  + "s" * 100_000 + "', expect: {min: 1}}]"),
    VALID.replace("owner: sre", "owner: sre\nschedule: '" + "9" * 100_000 + " * * * *'"),
    VALID.replace("name: x", "name: [unclosed " + "u" * 100_000),
], ids=["long-enum-value", "long-list-for-enum", "long-unknown-key", "long-name", "long-sql",
        "long-cron", "long-malformed"])
def test_every_message_shows_values_short(text: str) -> None:
    assert len(str(error_of(text))) < 500


def test_a_file_far_larger_than_a_drill_is_refused_before_parsing() -> None:
    started = time.monotonic()
    error = error_of(VALID + "# " + "c" * (2 << 20) + "\n")
    assert "a drill file has at most" in str(error)
    assert time.monotonic() - started < 1
