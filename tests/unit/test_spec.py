from pathlib import Path

import pytest

from dalp_dr.errors import SpecError
from dalp_dr.spec import QUARTERLY_CRON, PhaseName, Topology, load_drill, parse_drill

ROOT = Path(__file__).resolve().parents[2]

VALID = """\
name: x
topology: hot-warm
scenario: failover
owner: sre
objectives: {rto: 30m, rpo: 5m}
inventory: inv.yml
endpoint: {from_inventory: dsn}
phases:
  preflight: {playbook: p.yml}
  inject: {playbook: p.yml, vars: {dalp_walsender_freeze_ms: 500}}
  verify: {playbook: p.yml}
  steady_state: {playbook: p.yml, timeout: 15m}
"""


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_drill(text, source="drills/x.yaml")
    return info.value


def test_shipped_drill_is_valid_with_dalp_hot_warm_objectives() -> None:
    loaded = load_drill(ROOT / "drills" / "hot-warm-failover.yaml")
    assert loaded.spec.topology is Topology.HOT_WARM
    assert loaded.spec.objectives.rto.total_seconds() == 1800
    assert loaded.spec.objectives.rpo.total_seconds() == 300
    assert loaded.spec.schedule.cron == QUARTERLY_CRON
    assert loaded.spec.workload.heartbeat_interval.total_seconds() == 0.1
    assert set(loaded.playbooks) >= {PhaseName.PREFLIGHT, PhaseName.INJECT, PhaseName.RECOVER,
                                     PhaseName.VERIFY, PhaseName.STEADY_STATE}
    assert all(p.is_file() for p in loaded.playbooks.values())
    assert len(loaded.spec_hash) == 64


def test_defaults_and_vars() -> None:
    spec = parse_drill(VALID, source="x")
    assert spec.schedule.cron == QUARTERLY_CRON and spec.schedule.timezone == "UTC"
    assert spec.phases.inject.vars == {"dalp_walsender_freeze_ms": 500}
    assert spec.phases.steady_state.timeout.total_seconds() == 900


@pytest.mark.parametrize(
    ("mutation", "field", "words"),
    [
        (lambda t: t.replace("rpo: 5m", "rpo: 5x"), "objectives.rpo", "invalid duration"),
        (lambda t: t.replace("rto: 30m", "rto: -30m"), "objectives.rto", "negative"),
        (lambda t: t.replace("rto: 30m", "rto: 30"), "objectives.rto", "unit"),
        (lambda t: t + "colour: blue\n", "colour", "unknown field"),
        (lambda t: t.replace("{playbook: p.yml}", "{playbok: p.yml}", 1), "phases.preflight",
         "unknown field"),
        (lambda t: t.replace("hot-warm", "lukewarm"), "topology", "is not one of"),
        (lambda t: t.replace("failover", "restore"), "scenario", "does not apply"),
        (lambda t: t.replace("owner: sre\n", ""), "owner", "missing"),
        (lambda t: t + "schedule: every tuesday\n", "schedule", "not a valid schedule"),
        (lambda t: t.replace("{from_inventory: dsn}", '{dsn: "host=h password=s"}'),
         "endpoint", "password"),
        (lambda t: t.replace("{from_inventory: dsn}", "{}"), "endpoint", "exactly one"),
        (lambda t: t.replace("name: x", "name: Not A Slug"), "name", "lower-case"),
        (lambda t: t.replace("timeout: 15m", "timeout: 0s"), "phases.steady_state.timeout",
         "greater than 0s"),
        (lambda t: t.replace("dalp_walsender_freeze_ms", "ansible_host"),
         "phases.inject.vars.ansible_host", "cannot override"),
        (lambda t: t.replace("dalp_walsender_freeze_ms", "dalp_run_id"),
         "phases.inject.vars.dalp_run_id", "set by dalp-dr"),
        (lambda t: t + "checks: [{name: c, sql: 'select 1; delete from t', expect: {min: 1}}]\n",
         "checks[0].sql", "exactly one statement"),
        (lambda t: t + "checks: [{name: c, sql: 'select pg_cancel_backend(1)', "
                       "expect: {min: 1}}]\n", "checks[0].sql", "pg_cancel_backend()"),
        (lambda t: t.replace("owner: sre\n", "owner: sre\nowner: eve\n"), "owner",
         "duplicate key 'owner' at line 5"),
        *((lambda t, bad=bad: t.replace("rpo: 5m}", f"rpo: 5m, split_brain: {bad}}}"),
           "objectives.split_brain", f"whole number of writes, 0 or more (the most writes "
           f"the old primary may accept after the promotion), not {shown}")
          for bad, shown in (("-1", "-1"), ("true", "True"), ("1.5", "1.5"),
                             ("'0'", "'0'"), ("[0]", "[0]"))),
    ],
)
def test_errors_name_the_field(mutation, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    err = error_of(mutation(VALID))
    assert err.source == "drills/x.yaml"
    assert err.field is not None and err.field.startswith(field), err
    assert words in str(err)


def test_the_split_brain_objective_is_optional_and_counts_writes() -> None:
    spec = parse_drill(VALID.replace("rpo: 5m}", "rpo: 5m, split_brain: 0}"), source="x")
    assert spec.objectives.split_brain == 0
    assert spec.objectives.targets() == {"rto": 1800.0, "rpo": 300.0, "split_brain": 0.0}
    without = parse_drill(VALID, source="x")
    assert without.objectives.split_brain is None
    assert without.objectives.targets() == {"rto": 1800.0, "rpo": 300.0}
    # what the spec hash is of: a drill that does not declare it keeps its hash
    assert without.model_dump(mode="json", exclude_none=True)["objectives"] == {
        "rto": "1800s", "rpo": "300s"}


def test_malformed_yaml_reports_position() -> None:
    err = error_of("name: [unclosed\n")
    assert "malformed YAML at line" in str(err)


def test_not_a_mapping() -> None:
    assert "mapping" in str(error_of("- a\n- b\n"))


def test_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("all: {hosts: {h: {}}}\n")
    drill = tmp_path / "d.yaml"
    drill.write_text(VALID)
    with pytest.raises(SpecError) as info:
        load_drill(drill)
    assert info.value.field == "phases.preflight.playbook"
    (tmp_path / "p.yml").write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "inv.yml").unlink()
    with pytest.raises(SpecError) as info:
        load_drill(drill)
    assert info.value.field == "inventory"


def test_missing_drill_file() -> None:
    with pytest.raises(SpecError, match="not found"):
        load_drill("/nonexistent/drill.yaml")


def test_spec_hash_ignores_formatting(tmp_path: Path) -> None:
    a = parse_drill(VALID, source="a")
    b = parse_drill("# comment\n" + VALID.replace("{rto: 30m, rpo: 5m}", "{rpo: 300s, rto: 0.5h}"),
                    source="b")
    from dalp_dr.spec import spec_digest

    assert spec_digest(a) == spec_digest(b)
    c = parse_drill(VALID.replace("rpo: 5m", "rpo: 4m"), source="c")
    assert spec_digest(a) != spec_digest(c)


HOT_HOT = VALID.replace("topology: hot-warm", "topology: hot-hot").replace(
    "scenario: failover", "scenario: site-loss").replace(
    "endpoint: {from_inventory: dsn}\n", """populations:
  site-a: {endpoint: {from_inventory: a_dsn}, marker_table: dalp_dr_heartbeat_a}
  site-b: {endpoint: {from_inventory: b_dsn}, marker_table: dalp_dr_heartbeat_b, judged: false}
""")


def test_populations_each_with_endpoint_and_table() -> None:
    spec = parse_drill(HOT_HOT, source="drills/x.yaml")
    populations = spec.client_populations()
    assert list(populations) == ["site-a", "site-b"]
    assert populations["site-a"].marker_table == "dalp_dr_heartbeat_a"
    assert populations["site-a"].judged and not populations["site-b"].judged
    single = parse_drill(VALID, source="drills/x.yaml").client_populations()
    assert list(single) == ["service"] and single["service"].marker_table == "dalp_dr_heartbeat"


def test_populations_through_an_api_may_share_its_table() -> None:
    """Their markers are kept apart by run id (adapters/http.py): the table is the API's."""
    text = HOT_HOT.replace("{from_inventory: a_dsn}, marker_table: dalp_dr_heartbeat_a",
                           "{api: {from_inventory: a_url}}").replace(
        "{from_inventory: b_dsn}, marker_table: dalp_dr_heartbeat_b",
        "{api: {from_inventory: b_url}}")
    populations = parse_drill(text, source="drills/x.yaml").client_populations()
    assert {p.marker_table for p in populations.values()} == {"dalp_dr_heartbeat"}


@pytest.mark.parametrize(("text", "field", "words"), [
    (HOT_HOT.replace("populations:", "endpoint: {from_inventory: dsn}\npopulations:"),
     "(top level)", "exactly one of 'endpoint' or 'populations'"),
    (HOT_HOT.replace("dalp_dr_heartbeat_b", "dalp_dr_heartbeat_a"), "populations",
     "its own marker_table"),
    (HOT_HOT.replace("dalp_dr_heartbeat_a", "x; drop table y"),
     "populations.site-a.marker_table", "plain lower-case SQL identifier"),
    (HOT_HOT.replace("site-a:", "Site A:"), "populations", "lower-case"),
    (HOT_HOT.replace("dalp_dr_heartbeat_a}", "dalp_dr_heartbeat_a, judged: false}"),
     "populations", "at least one population must be judged"),
])
def test_population_errors_name_the_field(text: str, field: str, words: str) -> None:
    error = error_of(text)
    assert error.field == field and words in str(error), str(error)


def test_playbook_and_inventory_paths_stay_inside_the_allowed_directories(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dalp_dr.errors import SpecError
    from dalp_dr.spec import load_drill

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "evil.yml").write_text("- hosts: all\n  tasks: []\n")
    drills = tmp_path / "drills"
    drills.mkdir()
    text = (ROOT / "drills" / "hot-warm-failover.yaml").read_text() \
        .replace("../inventories/", f"{ROOT}/inventories/") \
        .replace("../playbooks/", f"{ROOT}/playbooks/")
    (drills / "ok.yaml").write_text(text)
    assert load_drill(drills / "ok.yaml").spec.name == "hot-warm-failover"  # the project
    (drills / "evil.yaml").write_text(text.replace(
        f"{ROOT}/playbooks/hot-warm/inject-kill-primary.yml", "../elsewhere/evil.yml"))
    with pytest.raises(SpecError, match="outside the project") as info:
        load_drill(drills / "evil.yaml")
    assert info.value.field == "phases.inject.playbook"
    (drills / "etc.yaml").write_text(text.replace(f"{ROOT}/inventories/lab/hot-warm.yml",
                                                  "/etc/passwd"))
    with pytest.raises(SpecError, match="outside the project"):
        load_drill(drills / "etc.yaml")
    monkeypatch.setenv("DALP_DR_ALLOWED_DIRS", str(outside))
    assert load_drill(drills / "evil.yaml").playbooks  # listed: allowed


PARTITIONED = VALID.replace("rpo: 5m}", "rpo: 5m, split_brain: 0}").replace(
    "endpoint: {from_inventory: dsn}\n",
    "populations:\n"
    "  clients: {endpoint: {from_inventory: dsn}}\n"
    "  site-a: {endpoint: {from_inventory: site_a_dsn}, marker_table: hb_a, judged: false,"
    " isolated: true}\n")


def test_an_isolated_population_is_measured_for_split_brain_only() -> None:
    spec = parse_drill(PARTITIONED, source="x")
    populations = spec.client_populations()
    assert populations["site-a"].isolated and not populations["site-a"].judged
    assert not populations["clients"].isolated
    # a population that does not say it keeps the hash it had before the field existed
    dumped = spec.model_dump(mode="json", exclude_none=True)["populations"]
    assert "isolated" not in dumped["clients"]


@pytest.mark.parametrize(("text", "field", "words"), [
    (PARTITIONED.replace(" judged: false,", ""), "populations.site-a",
     "an isolated population cannot be judged on RTO and RPO"),
    (PARTITIONED.replace(", split_brain: 0}", "}"), "",
     "population 'site-a' is isolated: it is measured for split brain only, so declare "
     "objectives.split_brain"),
])
def test_an_isolated_population_needs_the_objective_and_no_judging(
        text: str, field: str, words: str) -> None:
    err = error_of(text)
    assert (err.field or "").startswith(field), err
    assert words in str(err)


def test_split_brain_is_for_drills_that_promote_a_new_primary() -> None:
    text = VALID.replace("rpo: 5m}", "rpo: 5m, split_brain: 0}").replace(
        "topology: hot-warm", "topology: hot-hot").replace("scenario: failover",
                                                            "scenario: link-cut")
    err = error_of(text)
    assert "objectives.split_brain applies to failover and switchover drills" in str(err)
    assert "not to link-cut" in str(err)


PLATFORM = VALID.replace(
    "endpoint: {from_inventory: dsn}",
    "endpoint: {api: {from_inventory: dalp_api_url, read_back: {from_inventory: dsn}}}",
).replace("objectives: {rto: 30m, rpo: 5m}", """\
objectives: {rto: 30m, rpo: 5m, rtt: 1h}
converge:
  - {name: api-healthy, http: {from_inventory: dalp_api_url, path: /health},
     json_field: status, expect: {equals: ok}}
  - name: indexer-caught-up
    sql: select max(block) from idx
    near: {jsonrpc: {from_inventory: rpc, method: eth_blockNumber}, within: 2}
checks:
  - {name: exactly-once, sql: 'select count(*) from wf where started_at < $1',
     expect: {equals: 0}}""")


def test_a_platform_drill_heartbeats_through_the_api_and_converges() -> None:
    spec = parse_drill(PLATFORM, source="drills/x.yaml")
    endpoint = spec.client_populations()["service"].endpoint
    assert endpoint.api is not None and endpoint.api.path == "/dr/heartbeat"
    assert endpoint.sql() is not None and endpoint.sql().from_inventory == "dsn"  # type: ignore[union-attr]
    assert spec.objectives.targets()["rtt"] == 3600.0
    assert [p.name for p in spec.converge] == ["api-healthy", "indexer-caught-up"]
    near = spec.converge[1].near
    assert near is not None and near.jsonrpc is not None and near.within == 2


@pytest.mark.parametrize(("text", "field", "words"), [
    (PLATFORM.replace(", read_back: {from_inventory: dsn}", ""), "(top level)",
     "its population reaches the platform through an API without a SQL read_back"),
    (PLATFORM.replace("{api: {from_inventory: dalp_api_url,",
                      "{from_inventory: dsn, api: {from_inventory: dalp_api_url,"),
     "endpoint", "exactly one of 'dsn', 'from_inventory' or 'api'"),
    (PLATFORM.replace("from_inventory: dalp_api_url, read_back",
                      "url: 'https://user:pw@api.example.com', read_back"),
     "endpoint.api", "must not carry credentials"),
    (PLATFORM.replace("path: /health", "path: health"), "converge[0].http",
     "path: path must start with '/'"),
    (PLATFORM.replace("json_field: status, expect: {equals: ok}", "json_field: status"),
     "converge[0]", "exactly one of 'expect' or 'near'"),
    (PLATFORM.replace("json_field: status, ", ""), "converge[0]", "set 'json_field'"),
    (PLATFORM.replace("name: indexer-caught-up", "name: api-healthy"), "(top level)",
     "its own name"),
    (PLATFORM.replace("select max(block) from idx", "delete from idx"), "converge[1].sql",
     "not DELETE"),
    (PLATFORM.replace("started_at < $1", "started_at < $2"), "checks[0].sql", "only $1"),
    (PLATFORM.replace("method: eth_blockNumber", "method: 'eth block'"),
     "converge[1].near.jsonrpc.method", "JSON-RPC method name"),
])
def test_platform_errors_name_the_field(text: str, field: str, words: str) -> None:
    error = error_of(text)
    assert error.field == field and words in str(error), (error.field, str(error))
