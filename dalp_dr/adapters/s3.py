"""Backups and the WAL archive in S3, seen from the controller (boto3).

The inventory's ``dalp_backup_tool`` says which tool keeps them: ``barman-cloud`` (the
default, CloudNativePG's), whose catalogue ``dalp_dr.barman_cloud`` reads
(barman-cloud-backup-list), or ``pgbackrest``, whose catalogue ``dalp_dr.pgbackrest_tool``
reads (pgbackrest info). Those are the same files the database hosts run as their
archive/restore command, so both sides agree on what a complete
backup and a gap are.
boto3/botocore errors are translated here: an unreachable endpoint, a missing bucket or
refused credentials are TargetUnreachable (invalid input: nothing to measure), anything
else ObjectStoreError.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from dalp_dr import barman_cloud, object_store, pgbackrest_tool
from dalp_dr.adapters.aws_errors import BOTO_ERRORS, AwsErrorKind, object_store_error
from dalp_dr.durations import format_duration
from dalp_dr.errors import HintKey, InventoryError, ObjectStoreError
from dalp_dr.inventory import Inventory

_UNREACHABLE = frozenset({AwsErrorKind.REFUSED, AwsErrorKind.NO_BUCKET, AwsErrorKind.NOT_FOUND})
"""a refused, missing or unreadable location: nothing to measure (invalid input)"""


BACKUP_TOOLS = ("barman-cloud", "pgbackrest")
DEFAULT_BACKUP_TOOL = "barman-cloud"
"""a hot-cold inventory (one with ``dalp_s3_bucket``) that names no tool: CloudNativePG's"""
RETIRED_BACKUP_TOOLS = {"s3-archive": "this project's own WAL tool, which no DALP estate "
                                      "restores with"}


def backup_tool_of(tool: object, bucket: object) -> object:
    """The backup tool a host keeps its backups with: the one ``dalp_backup_tool`` names,
    barman-cloud when it names none but the host has a bucket (``dalp_s3_bucket``), None
    when it keeps no backups in object storage. The one place the default is decided."""
    if tool not in ("", None):
        return tool
    return DEFAULT_BACKUP_TOOL if bucket not in ("", None) else None


def _unknown_tool(inventory: Inventory, tool: object, field: str) -> InventoryError:
    why = RETIRED_BACKUP_TOOLS.get(str(tool))
    return InventoryError(
        f"backup tool {tool!r} was retired ({why})" if why else f"unknown backup tool {tool!r}",
        source=str(inventory.path), field=field,
        hint=f"one of: {', '.join(BACKUP_TOOLS)} (docs/backup-tools.md)")


def check_backup_tool(inventory: Inventory) -> None:
    """Every host that keeps backups in object storage (``dalp_s3_bucket``) has a known
    ``dalp_backup_tool`` (barman-cloud when unset); a database host (groups primary and
    cold) on barman-cloud names its ``dalp_barman_server_name``, and none still points
    ``dalp_s3_tool`` at the retired tool's script: checked before a drill starts (the
    playbooks would take an unknown tool for barman-cloud, and barman-cloud without a server
    name fails mid-run). InventoryError naming the field and the fix."""
    tools = inventory.per_host("dalp_backup_tool")
    buckets = inventory.per_host("dalp_s3_bucket")
    servers = inventory.per_host("dalp_barman_server_name")
    scripts = inventory.per_host("dalp_s3_tool")
    databases = set(inventory.match("primary:cold"))
    for host in sorted(set(tools) | {h for h, b in buckets.items() if b not in ("", None)}):
        tool = backup_tool_of(tools.get(host), buckets.get(host))
        if tool not in BACKUP_TOOLS:
            raise _unknown_tool(inventory, tool, f"dalp_backup_tool (host {host})")
        if host not in databases:
            continue
        if str(scripts.get(host) or "").rsplit("/", 1)[-1] == "dalp_s3.py":
            raise InventoryError(
                "dalp_s3_tool names dalp_s3.py, the retired s3-archive tool's script (now the "
                "backup tools' shared library beside their own)", source=str(inventory.path),
                field=f"dalp_s3_tool (host {host})",
                hint=f"point it at the {tool} script: .../dalp_"
                     f"{'pgbackrest' if tool == 'pgbackrest' else 'barman'}.py")
        if tool == "barman-cloud" and servers.get(host) in ("", None):
            raise InventoryError("barman-cloud needs the name it keeps the cluster under",
                                 source=str(inventory.path),
                                 field=f"dalp_barman_server_name (host {host})",
                                 hint="set dalp_barman_server_name (the folder under "
                                      "dalp_s3_prefix, CloudNativePG's serverName)")


class BackupStatus(BaseModel, frozen=True):
    tool: str
    """the backup tool whose catalogue this is (``dalp_backup_tool``)"""
    location: str
    backups: int
    newest_backup: str | None
    newest_backup_age_s: float | None
    newest_wal: str | None
    newest_wal_age_s: float | None
    wal_gap: str | None
    rpo_s: float
    attainable: bool
    reasons: list[str]
    catalogue: list[dict[str, Any]] | None = None
    """the tool's own catalogue, as it listed it (barman-cloud-backup-list)"""


class S3Archive:
    def __init__(self, settings: dict[str, Any], tool: str = DEFAULT_BACKUP_TOOL) -> None:
        self._cfg = settings
        self.tool = tool
        self._client = object_store.client(settings)
        if tool == "pgbackrest":
            self.location = f"{pgbackrest_tool.source_url(settings)}/backup/{settings['stanza']}"
        else:
            self.location = f"{barman_cloud.source_url(settings)}/{settings['server_name']}"

    @classmethod
    def from_inventory(cls, inventory: Inventory) -> S3Archive:
        def var(name: str, default: Any = None) -> Any:
            try:
                value = inventory.variable(name)
            except InventoryError:
                if default is ...:
                    raise
                return default
            return value if value not in ("", None) else default

        tool = var("dalp_backup_tool", DEFAULT_BACKUP_TOOL)
        if tool not in BACKUP_TOOLS:
            raise _unknown_tool(inventory, tool, "dalp_backup_tool")
        settings = {
            "bucket": var("dalp_s3_bucket", ...),
            "prefix": var("dalp_s3_prefix", ""),
            "endpoint_url": var("dalp_s3_endpoint_url"),
            "region": var("dalp_s3_region", "us-east-1"),
            "access_key_id": var("dalp_s3_access_key_id"),
            "secret_access_key": var("dalp_s3_secret_access_key"),
        }
        if tool == "barman-cloud":
            settings["server_name"] = var("dalp_barman_server_name", ...)
            settings["bin_dir"] = var("dalp_barman_bin_dir")
        if tool == "pgbackrest":
            settings.update({
                "stanza": var("dalp_pgbackrest_stanza", ...),
                "repo_endpoint": var("dalp_pgbackrest_endpoint"),
                "repo_port": var("dalp_pgbackrest_port"),
                "ca_file": var("dalp_pgbackrest_ca_file"),
                "pgbackrest_bin_dir": var("dalp_pgbackrest_bin_dir"),
            })
        return cls(settings, tool)

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except BOTO_ERRORS as exc:
            raise object_store_error(exc, self.location, what, unreachable=_UNREACHABLE,
                                     hint_key=HintKey.S3_ENDPOINT) from None
        except (object_store.Failure, barman_cloud.Failure, pgbackrest_tool.Failure,
                OSError) as exc:
            raise ObjectStoreError(f"{self.location}: {what}: {exc}") from None

    def status(self, rpo: timedelta) -> BackupStatus:
        read = pgbackrest_tool.status if self.tool == "pgbackrest" else barman_cloud.status
        # the bucket first, through boto3: a missing bucket or refused credentials are then
        # S3's own error (invalid input), not a tool's exit status (a failure to measure)
        self._call("list", lambda: self._client.list_objects_v2(
            Bucket=self._cfg["bucket"], Prefix=self._cfg.get("prefix") or "", MaxKeys=1))
        raw: dict[str, Any] = self._call("status", lambda: read(self._client, self._cfg))
        limit = rpo.total_seconds()
        reasons: list[str] = []
        if not raw["backups"]:
            reasons.append(f"no complete base backup under {self.location}")
        elif raw["newest_backup_age_s"] is not None and raw["newest_backup_age_s"] >= limit:
            reasons.append(f"newest base backup is {format_duration(raw['newest_backup_age_s'])}"
                           f" old, RPO {format_duration(limit)}")
        if raw["newest_wal"] is None:
            reasons.append(f"no archived WAL under {self.location}")
        elif raw["newest_wal_age_s"] is not None and raw["newest_wal_age_s"] >= limit:
            reasons.append(f"newest archived WAL is {format_duration(raw['newest_wal_age_s'])}"
                           f" old, RPO {format_duration(limit)}")
        if raw["wal_gap"]:
            reasons.append(f"WAL gap: {raw.get('wal_gap_object') or raw['wal_gap']} is missing")
        return BackupStatus(
            tool=self.tool, catalogue=raw.get("catalogue"), location=self.location,
            backups=raw["backups"], newest_backup=raw["newest_backup"],
            newest_backup_age_s=raw["newest_backup_age_s"], newest_wal=raw["newest_wal"],
            newest_wal_age_s=raw["newest_wal_age_s"], wal_gap=raw["wal_gap"], rpo_s=limit,
            attainable=not reasons, reasons=reasons,
        )
