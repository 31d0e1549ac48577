"""A result the history store did not take (it was unreachable, or full, as the run ended),
kept beside the run's evidence until it can be recorded: ``result.json``, and
``result.json.sig``, the history key's signature over it (``SealObserver.vouch``).

Crash recovery (the next ``drill run`` on the environment, the scheduler, ``drill recover``)
records a kept result as the run ended only when the signature holds for a trusted key and
the journal's ``run.finished`` says the same; identity (run, drill, environment, start,
evidence directory) comes from the store's own row. Someone who can write the results
directory but has not the key cannot have a forged result recorded, sealed and signed: a
kept result that fails either check is set aside (said why) and the run is recorded by its
journal alone, ``aborted``, as after a crash. A history without a key trusts its results
directory as it trusts its store (it makes no claim against either).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dalp_dr.errors import DalpDrError
from dalp_dr.history.base import SealObserver
from dalp_dr.journal import EventKind
from dalp_dr.private_files import atomic_write
from dalp_dr.redact import Redactor
from dalp_dr.results import Outcome, RunResult

IDENTITY = ("drill", "topology", "scenario", "environment", "owner", "trigger", "operator",
            "spec_hash", "started_at", "objectives", "evidence_dir", "planned_at",
            "drill_file", "provenance")
"""what a recorded kept result takes from the store's row, never from the file"""
RESULT = "result.json"
SIGNATURE = "result.json.sig"


def result_text(result: RunResult, redactor: Redactor) -> str:
    """result.json exactly as the run writes it (``Journal.write_document`` redacts)."""
    return redactor.text(result.model_dump_json(indent=2))


def vouch_for(evidence: Path, result: RunResult, redactor: Redactor,
              observer: SealObserver | None) -> str | None:
    """Sign the run's result.json (as written) with the history's key, beside it. None when
    it is signed (or the history has no key); else why it is not (it will not be trusted)."""
    if observer is None:
        return None
    try:
        signature = observer.vouch(result_text(result, redactor).encode())
        if signature is not None:
            atomic_write(evidence / SIGNATURE, signature.decode())
    except (DalpDrError, OSError) as exc:
        return f"{SIGNATURE} not written ({type(exc).__name__}: {exc})"
    return None


def kept_result(evidence: Path, base: RunResult, records: list[dict[str, Any]],
                observer: SealObserver | None) -> RunResult | str | None:
    """The result the run kept, to record as it ended; None when it kept none (it did not
    end, or could not write it); a text saying why it is set aside when it is not to be
    trusted."""
    finished = [r for r in records if r.get("kind") == EventKind.RUN_FINISHED]
    path = evidence / RESULT
    if not finished or not path.is_file():
        return None
    try:
        data = path.read_bytes()
        signature = (evidence / SIGNATURE).read_bytes() \
            if (evidence / SIGNATURE).is_file() else None
        result = RunResult.model_validate_json(data)
    except (OSError, ValueError) as exc:
        return f"its {RESULT} cannot be read ({type(exc).__name__})"
    vouched = observer.vouches(data, signature) if observer is not None else True
    if not vouched:
        return (f"its {RESULT} is not signed by this history's key"
                if signature is None else f"the signature of its {RESULT} does not hold")
    said = finished[-1]
    if result.run_id != base.run_id or result.outcome is Outcome.RUNNING:
        return f"its {RESULT} is not this run's final result"
    agrees = (said.get("steady_state_restored") == result.steady_state_restored
              and said.get("verdicts") == [v.model_dump(mode="json") for v in result.verdicts]
              # the same, or worse (evidence lost after run.finished fails the run)
              and (said.get("outcome") == result.outcome.value
                   or result.outcome is Outcome.FAILED))
    if not agrees:
        return f"its {RESULT} does not say what its journal's run.finished says"
    return result.model_copy(update={name: getattr(base, name) for name in IDENTITY})
