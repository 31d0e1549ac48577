"""Declarative verify checks from the drill file (``checks:``), run after the verify playbook
passed: read-only SQL through a population's endpoint, HTTP GET with an expected status and
optionally a JSON field. Each check reports what it saw; any failing check fails verify.

DALP's platform-status semantics apply to JSON fields: ``no_data`` (or a missing field) is
never healthy, whatever the expectation.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from dalp_dr.adapters.base import ServiceEndpoint
from dalp_dr.errors import EndpointError
from dalp_dr.redact import Redactor
from dalp_dr.results import CheckOutcome
from dalp_dr.spec import Expect, VerifyCheck

NO_DATA = "no_data"


def meets(value: Any, expect: Expect) -> tuple[bool, str]:
    if expect.equals is not None:
        same = (value == expect.equals) if not isinstance(expect.equals, str) \
            else str(value) == expect.equals
        if isinstance(expect.equals, (int, float)) and not isinstance(expect.equals, bool):
            try:
                same = float(value) == float(expect.equals)
            except (TypeError, ValueError):
                same = False
        if not same:
            return False, f"expected {expect.equals!r}, got {value!r}"
    if expect.min is not None or expect.max is not None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False, f"expected a number, got {value!r}"
        if expect.min is not None and number < expect.min:
            return False, f"{number:g} is below the minimum {expect.min:g}"
        if expect.max is not None and number > expect.max:
            return False, f"{number:g} is above the maximum {expect.max:g}"
    return True, "as expected"


def _field(document: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(document, dict):
            document = document.get(part)
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


def _sql(check: VerifyCheck, endpoint: ServiceEndpoint) -> CheckOutcome:
    assert check.sql is not None and check.expect is not None
    try:
        session = endpoint.connect(timeout=check.timeout.total_seconds())
        try:
            value = session.query_value(check.sql)
        finally:
            session.close()
    except EndpointError as exc:
        return CheckOutcome(name=check.name, kind="sql", ok=False, value=None,
                            detail=f"query failed: {exc}")
    ok, detail = meets(value, check.expect)
    return CheckOutcome(name=check.name, kind="sql", ok=ok, value=repr(value), detail=detail)


def _http(check: VerifyCheck) -> CheckOutcome:
    assert check.http is not None
    request = urllib.request.Request(check.http, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=check.timeout.total_seconds()) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return CheckOutcome(name=check.name, kind="http", ok=False, value=None,
                            detail=f"request failed: {getattr(exc, 'reason', exc)}")
    if status != check.status:
        return CheckOutcome(name=check.name, kind="http", ok=False, value=str(status),
                            detail=f"HTTP {status}, expected {check.status}")
    if check.json_field is None:
        return CheckOutcome(name=check.name, kind="http", ok=True, value=str(status),
                            detail=f"HTTP {status}")
    try:
        value = _field(json.loads(body), check.json_field)
    except (ValueError, UnicodeDecodeError):
        return CheckOutcome(name=check.name, kind="http", ok=False, value=None,
                            detail="the body is not JSON")
    if value is None or value == NO_DATA:
        return CheckOutcome(name=check.name, kind="http", ok=False, value=repr(value),
                            detail=f"{check.json_field} is {value or 'missing'}: no data is "
                                   "not healthy")
    assert check.expect is not None
    ok, detail = meets(value, check.expect)
    return CheckOutcome(name=check.name, kind="http", ok=ok, value=repr(value), detail=detail)


def run_checks(checks: list[VerifyCheck], endpoints: dict[str, ServiceEndpoint],
               redactor: Redactor) -> list[CheckOutcome]:
    outcomes = []
    first = next(iter(endpoints))
    for check in checks:
        if check.sql is not None:
            outcome = _sql(check, endpoints[check.through or first])
        else:
            outcome = _http(check)
        outcomes.append(outcome.model_copy(update={
            "detail": redactor.text(outcome.detail),
            "value": redactor.text(outcome.value) if outcome.value is not None else None}))
    return outcomes
