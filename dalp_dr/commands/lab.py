"""``dalp-dr lab``: the local lab, up, status and down."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from dalp_dr.commands.output import Output, output_options
from dalp_dr.commands.shared import settings_of

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


def _check_name(ctx: click.Context, param: click.Parameter, value: str | None
                ) -> str | None:
    from dalp_dr.named_lab import NAME

    if value is not None and not NAME.fullmatch(value):
        raise click.BadParameter(
            f"'{value}' cannot name a lab: 1 to 31 of a-z, 0-9 and '-', starting with a "
            "letter or digit", ctx=ctx, param=param)
    return value


def name_option() -> Callable[[F], F]:
    return click.option("--name", "name", metavar="NAME", callback=_check_name,
                        help="a named lab: one more lab of the topology beside the unnamed "
                             "one, with its own root, ports and environment (lab-NAME)")


def _lab(ctx: click.Context) -> Lab:
    # lazy: the runner and the lab (~10 ms) are not needed to start the other commands
    from dalp_dr.adapters.ansible import AnsibleRunner
    from dalp_dr.lab import Lab

    return Lab(settings_of(ctx).project_dir, AnsibleRunner())


@lab.command("up")
@click.argument("topology")
@hosts_option()
@name_option()
@output_options()
@click.pass_context
def lab_up(ctx: click.Context, topology: str, hosts: bool, name: str | None,
           output: Output) -> None:
    """Create (or repair) the lab for a topology. Running it twice is harmless.

    With --name, a named lab: its inventory is generated in its root (printed), for drill
    files to point at."""
    the_lab = _lab(ctx)
    inventory = the_lab.up(topology, hosts=hosts, name=name)
    if name is None:
        output.record({"topology": topology, "hosts": hosts, "state": "up"},
                      Text(f"lab {_name(topology, hosts)} is up"))
        return
    from dalp_dr.named_lab import environment_of

    output.record({"topology": topology, "hosts": hosts, "state": "up", "name": name,
                   "inventory": str(inventory), "root": str(inventory.parent),
                   "environment": environment_of(name),
                   "ports": the_lab.named_ports(topology, name)},
                  Text(f"lab {_name(topology, hosts, name)} is up; inventory: {inventory}"))


def _name(topology: str, hosts: bool, name: str | None = None) -> str:
    return (f"{topology} --hosts" if hosts else topology) + (f" --name {name}" if name else "")


@lab.command("status")
@click.argument("topology", required=False)
@hosts_option()
@name_option()
@output_options()
@click.pass_context
def lab_status(ctx: click.Context, topology: str | None, hosts: bool, name: str | None,
               output: Output) -> None:
    """Show each lab's sites (role, timeline, replication) and where the route points.

    With --name, the named labs of that name (every topology it has a lab of, when none is
    given)."""
    the_lab = _lab(ctx)
    if topology:
        topologies = [topology]
    elif name is not None:
        topologies = the_lab.named_topologies(name)
    else:
        topologies = the_lab.topologies(hosts=hosts)
    report = {t: the_lab.status(t, hosts=hosts, name=name) for t in topologies}
    if output.is_json:
        output.json(report)
    else:
        output.rows([{"topology": name, "hosts": hosts, **status}
                     for name, status in report.items()],
                    lambda console: _print_status(console, report),
                    columns=("topology", "hosts", "present"))


def _print_status(console: Console, report: dict[str, Any]) -> None:
    def say(line: str) -> None:
        console.print(Text(line))

    for name, status in report.items():
        if not status.get("present"):
            say(f"{name}: down")
            continue
        say(f"{name}:" + (f" (named lab {status['name']}, inventory {status['inventory']})"
                          if status.get("name") else ""))
        for member in status.get("members", []):  # clusters that report members (Patroni)
            say(f"  {member.get('name', '?'):<8} {member.get('role', '?'):<13} "
                f"{member.get('state', '?'):<10} timeline {member.get('timeline', '-')}"
                f"  lag {member.get('lag', 0)}")
        for site, s in sorted(status.get("sites", {}).items()):
            detail = s.get("detail") or {}
            role = ("standby" if detail.get("in_recovery") else "primary") \
                if s.get("accepting") else "down"
            replicas = ", ".join(f"{r.get('application_name')}={r.get('state')}"
                                 for r in detail.get("replicas", []))
            say(f"  {site:<8} port {s.get('port')}  {role:<8} timeline "
                f"{detail.get('timeline', '-')}"
                + (f"  streaming from {detail.get('upstream_host') or ''}"
                   f":{detail['upstream_port']}" if detail.get("upstream_port") else "")
                + (f"  replicas: {replicas}" if replicas else ""))
            for sub in s.get("subscriptions", []):  # logical replication (hot-hot)
                health = ("streaming" if sub.get("worker") else "no worker") \
                    if sub.get("enabled") else "DISABLED"
                say(f"           subscription {sub.get('name')}: {health}"
                    + (f", {sub['unsynced']} tables syncing" if sub.get("unsynced") else ""))
        if "route" in status:
            route = status["route"]
            target = route.get("backend") or route.get("backend_port") or "unreachable"
            say(f"  route    -> {target}")


@lab.command("down")
@click.argument("topology", required=False)
@hosts_option()
@name_option()
@output_options()
@click.pass_context
def lab_down(ctx: click.Context, topology: str | None, hosts: bool, name: str | None,
             output: Output) -> None:
    """Stop every lab process and remove the lab's data (all labs, host labs too, when no
    topology is given; named labs are taken down only by their --name)."""
    the_lab = _lab(ctx)
    if name is not None:
        named = [topology] if topology else the_lab.named_topologies(name)
        for each in named:
            the_lab.down(each, hosts=hosts, name=name)

        def human_named(console: Console) -> None:
            for each in named:
                console.print(Text(f"lab {_name(each, hosts, name)} is down"))

        output.rows([{"topology": each, "hosts": hosts, "name": name, "state": "down"}
                     for each in named], human_named)
        return
    labs = [(topology, hosts)] if topology else [
        (each, kind) for kind in (False, True) for each in the_lab.topologies(hosts=kind)]
    down: list[tuple[str, bool]] = []
    for each, kind in labs:
        if topology or the_lab.is_present(each, hosts=kind):
            the_lab.down(each, hosts=kind)
            down.append((each, kind))

    def human(console: Console) -> None:
        for each, kind in down:
            console.print(Text(f"lab {_name(each, kind)} is down"))

    output.rows([{"topology": each, "hosts": kind, "state": "down"} for each, kind in down],
                human)
