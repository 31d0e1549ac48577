"""Property-based input hardening (hypothesis): whatever YAML document, value or text reaches
the drill loader or the CLI, the answer is a validated drill or one clear message and exit 2,
never a traceback. 500+ examples per run."""

from __future__ import annotations

import io
import string
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dalp_dr.commands import main
from dalp_dr.durations import parse_duration
from dalp_dr.errors import InvalidInput
from dalp_dr.spec import parse_drill

ROOT = Path(__file__).resolve().parents[2]
VALID = yaml.safe_load((ROOT / "drills" / "hot-warm-failover.yaml").read_text())

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(
                        ["quarterly", "5m", "0s", "-1s", "1h30m", "100ms", "hot-warm",
                         "failover", "restore", "* * * * *", "99 99 99 99 99", "../x.yml",
                         "/etc/passwd", "$(reboot)", "; rm -rf /", "{{ lookup('pipe','id') }}"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


def paths(document: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found.extend(paths(value, (*prefix, key)))
    return found


FIELD_PATHS = paths(VALID)


def replaced(document: Any, path: tuple[str, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(document)
    copy[path[0]] = replaced(document.get(path[0], {}) if isinstance(document, dict) else {},
                             path[1:], value)
    return copy


def check(text: str) -> None:
    try:
        parse_drill(text, source="fuzz.yaml")
    except InvalidInput as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml"), message  # names the file
        assert "Traceback" not in message


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELD_PATHS), values)
def test_any_value_in_any_field_is_a_drill_or_a_clear_error(path: tuple[str, ...],
                                                            value: Any) -> None:
    check(yaml.safe_dump(replaced(VALID, path, value), allow_unicode=True))


@settings(max_examples=150, deadline=None)
@given(values)
def test_any_yaml_document_is_a_drill_or_a_clear_error(document: Any) -> None:
    check(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=string.printable + "äé€\t", max_size=200))
def test_any_text_is_a_drill_or_a_clear_error(text: str) -> None:
    check(text)


sql_texts = st.one_of(st.text(max_size=80), st.lists(st.sampled_from(
    ["select", "1", ";", "commit", "delete from t", "with", "d as (", ")", "copy", "(", "'",
     "$$", "--", "/*", "*/", "pg_terminate_backend(", "count(*)", "from", "t", ",", "into",
     "for update", "values (1)", '"', "union", "\n"]), max_size=12).map(" ".join))


@settings(max_examples=200, deadline=None)
@given(sql_texts)
def test_any_check_sql_is_a_check_or_a_clear_error(sql: str) -> None:
    from dalp_dr.checks import check_query

    try:
        statement = check_query(sql)
    except ValueError:
        statement = None
    if statement is not None:
        assert ";" not in statement[-1:]  # one statement, no trailing separator
    document = dict(VALID, checks=[{"name": "c", "sql": sql, "expect": {"min": 0}}])
    check(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=20), st.integers(), max_size=3))
def test_any_phase_vars_are_a_drill_or_a_clear_error(variables: dict[str, int]) -> None:
    document = replaced(VALID, ("phases", "inject", "vars"), variables)
    check(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="&*ab[]{}:, -<\n", max_size=120))
def test_any_alias_and_anchor_soup_is_a_drill_or_a_clear_error(text: str) -> None:
    check("topology: " + text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20))
def test_any_duration_text_parses_or_is_a_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert value >= timedelta(0)  # a parsed duration is never negative


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.one_of(values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
                          st.sampled_from(FIELD_PATHS).flatmap(
                              lambda p: values.map(lambda v: yaml.safe_dump(
                                  replaced(VALID, p, v), allow_unicode=True)))),
       command=st.sampled_from(["validate", "run", "plan"]))
def test_the_cli_answers_exit_2_with_one_message_never_a_traceback(
        workdir: Path, document: str, command: str) -> None:
    drill = workdir / "drill.yaml"
    drill.write_text(document)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--results-dir", str(workdir / "results"), "drill", command, str(drill)])
    assert code in (0, 2), (code, err.getvalue())
    assert "Traceback" not in err.getvalue() + out.getvalue()
    if code == 2:
        assert str(drill) in err.getvalue() or "drill.yaml" in err.getvalue()
    assert not (workdir / "results").exists()  # nothing started, nothing written


@pytest.mark.parametrize(("sql", "statement"), [
    ("SELECT--;", "SELECT"),  # found by the test above: an empty SELECT and a comment
    ("select 1 -- the last word;\n", "select 1"),
    ("select 1 /* x */ ;", "select 1"),
    ("select '--;' as x", "select '--;' as x"),
])
def test_a_check_s_statement_ends_at_its_last_token(sql: str, statement: str) -> None:
    """A trailing comment would swallow whatever follows the statement where it is run."""
    from dalp_dr.checks import check_query

    assert check_query(sql) == statement
