"""``dalp-dr lab``: the local lab, up, status and down."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dalp_dr.commands.shared import json_option, settings_of
from dalp_dr.console import out

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from dalp_dr.lab import Lab


@click.group()
def lab() -> None:
    """The labs: real PostgreSQL and a route on this machine, built by playbooks.

    A lab runs every site on 127.0.0.1; with --hosts each site is a host of its own (a
    network namespace with its address and sshd, reached over SSH)."""


def hosts_option() -> Callable[[F], F]:
    return click.option("--hosts", "hosts", is_flag=True,
                        help="the host lab: each site its own host, reached over SSH")


def _lab(ctx: click.Context) -> Lab:
    # lazy: the runner and the lab (~10 ms) are not needed to start the other commands
    from dalp_dr.adapters.ansible import AnsibleRunner
    from dalp_dr.lab import Lab

    return Lab(settings_of(ctx).project_dir, AnsibleRunner())


@lab.command("up")
@click.argument("topology")
@hosts_option()
@click.pass_context
def lab_up(ctx: click.Context, topology: str, hosts: bool) -> None:
    """Create (or repair) the lab for a topology. Running it twice is harmless."""
    _lab(ctx).up(topology, hosts=hosts)
    out.print(f"lab {_name(topology, hosts)} is up")


def _name(topology: str, hosts: bool) -> str:
    return f"{topology} --hosts" if hosts else topology


@lab.command("status")
@click.argument("topology", required=False)
@hosts_option()
@json_option()
@click.pass_context
def lab_status(ctx: click.Context, topology: str | None, hosts: bool, as_json: bool) -> None:
    """Show each lab's sites (role, timeline, replication) and where the route points."""
    the_lab = _lab(ctx)
    topologies = [topology] if topology else the_lab.topologies(hosts=hosts)
    report = {t: the_lab.status(t, hosts=hosts) for t in topologies}
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    for name, status in report.items():
        if not status.get("present"):
            out.print(f"{name}: down")
            continue
        out.print(f"{name}:")
        for member in status.get("members", []):  # clusters that report members (Patroni)
            out.print(f"  {member.get('name', '?'):<8} {member.get('role', '?'):<13} "
                      f"{member.get('state', '?'):<10} timeline {member.get('timeline', '-')}"
                      f"  lag {member.get('lag', 0)}")
        for site, s in sorted(status.get("sites", {}).items()):
            detail = s.get("detail") or {}
            role = ("standby" if detail.get("in_recovery") else "primary") \
                if s.get("accepting") else "down"
            replicas = ", ".join(f"{r.get('application_name')}={r.get('state')}"
                                 for r in detail.get("replicas", []))
            out.print(f"  {site:<8} port {s.get('port')}  {role:<8} timeline "
                      f"{detail.get('timeline', '-')}"
                      + (f"  streaming from {detail.get('upstream_host') or ''}"
                         f":{detail['upstream_port']}" if detail.get("upstream_port") else "")
                      + (f"  replicas: {replicas}" if replicas else ""))
            for sub in s.get("subscriptions", []):  # logical replication (hot-hot)
                health = ("streaming" if sub.get("worker") else "no worker") \
                    if sub.get("enabled") else "DISABLED"
                out.print(f"           subscription {sub.get('name')}: {health}"
                          + (f", {sub['unsynced']} tables syncing" if sub.get("unsynced") else ""))
        if "route" in status:
            route = status["route"]
            target = route.get("backend") or route.get("backend_port") or "unreachable"
            out.print(f"  route    -> {target}")


@lab.command("down")
@click.argument("topology", required=False)
@hosts_option()
@click.pass_context
def lab_down(ctx: click.Context, topology: str | None, hosts: bool) -> None:
    """Stop every lab process and remove the lab's data (all labs, host labs too, when none
    is named)."""
    the_lab = _lab(ctx)
    labs = [(topology, hosts)] if topology else [
        (name, kind) for kind in (False, True) for name in the_lab.topologies(hosts=kind)]
    for name, kind in labs:
        if topology or the_lab.is_present(name, hosts=kind):
            the_lab.down(name, hosts=kind)
            out.print(f"lab {_name(name, kind)} is down")
