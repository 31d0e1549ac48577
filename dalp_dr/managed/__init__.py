"""Managed databases whose provider fails them over on request (cloud-native production).

One adapter per service, one file each, behind :class:`~dalp_dr.managed.base.ManagedDatabase`:

* ``rds-multi-az``: an RDS DB instance with a Multi-AZ standby (``rds_multi_az.py``)
* ``aurora``: an Aurora cluster, or an RDS Multi-AZ DB cluster (``aurora.py``)

The drill playbooks in ``playbooks/managed/`` reach them through the Ansible module
``playbooks/managed/library/dalp_managed_db.py``.

The RDS point-in-time restore drill (``rds_restore.py``, on the same ``RdsApi``) changes no
database it did not create: it restores to a new instance and deletes it
(``playbooks/managed/library/dalp_rds_restore.py``).
"""

from __future__ import annotations

from typing import Any

from dalp_dr.errors import InventoryError
from dalp_dr.managed.base import ManagedDatabase, ManagedState, Transition, wait_for_failover

KINDS = ("rds-multi-az", "aurora")


def open_managed(kind: str, identifier: str, *, region: str | None = None,
                 endpoint_url: str | None = None, client: Any = None) -> ManagedDatabase:
    """The adapter for ``kind``; ``client`` (a boto3 RDS client) is for tests and callers
    that already hold one."""
    if kind == "rds-multi-az":
        from dalp_dr.managed.rds_multi_az import RdsMultiAz

        return RdsMultiAz(identifier, region=region, endpoint_url=endpoint_url, client=client)
    if kind == "aurora":
        from dalp_dr.managed.aurora import AuroraCluster

        return AuroraCluster(identifier, region=region, endpoint_url=endpoint_url, client=client)
    raise InventoryError(f"unknown managed database kind {kind!r}", field="dalp_managed_kind",
                         hint="one of: " + ", ".join(KINDS))


__all__ = ["KINDS", "ManagedDatabase", "ManagedState", "Transition", "open_managed",
           "wait_for_failover"]
