"""Set-up that must succeed before anything is recorded or touched: the inventory reads, its
guardrail settings are well formed, and every client population's endpoint answers."""

from __future__ import annotations

from collections.abc import Callable

from dalp_dr import guardrails
from dalp_dr.adapters.base import ServiceEndpoint
from dalp_dr.drill.context import PreparedDrill
from dalp_dr.errors import EndpointError, HintKey, TargetUnreachable
from dalp_dr.inventory import Inventory
from dalp_dr.redact import Redactor
from dalp_dr.spec import LoadedDrill

EndpointFactory = Callable[[str, Redactor, str], ServiceEndpoint]
"""(dsn, redactor, marker table) -> endpoint"""


def prepare(drill: LoadedDrill, endpoint_factory: EndpointFactory) -> PreparedDrill:
    """Resolve the inventory and every population's endpoint and prove each answers. No side
    effects: raises InvalidInput (TargetUnreachable, InventoryError) before anything is
    written."""
    inventory = Inventory(drill.inventory)
    redactor = Redactor(inventory.secret_values())
    # guardrail settings must be readable (every host, not mixed) before any connection
    inventory.is_production()
    guardrails.freezes(inventory)
    several = drill.spec.populations is not None
    endpoints: dict[str, ServiceEndpoint] = {}
    for name, population in drill.spec.client_populations().items():
        where = f"populations.{name}.endpoint" if several else "endpoint"
        endpoint_spec = population.endpoint
        if endpoint_spec.dsn is not None:
            dsn = endpoint_spec.dsn
        else:
            assert endpoint_spec.from_inventory is not None
            value = inventory.variable(endpoint_spec.from_inventory, host=endpoint_spec.host)
            if not isinstance(value, str) or not value.strip():
                raise TargetUnreachable(
                    f"inventory variable '{endpoint_spec.from_inventory}' is not a DSN string",
                    source=str(drill.path), field=f"{where}.from_inventory")
            dsn = " ".join(value.split())
        try:
            endpoint = endpoint_factory(dsn, redactor, population.marker_table)
        except EndpointError as exc:
            raise TargetUnreachable(str(exc), source=str(drill.path), field=where) from None
        try:
            endpoint.connect(timeout=5).close()
        except EndpointError as exc:
            raise TargetUnreachable(
                f"service endpoint {endpoint.display} does not answer: {exc}",
                source=str(drill.path), field=where,
                hint_key=HintKey.ENVIRONMENT_UP,
                hint_params={"topology": str(drill.spec.topology)},
            ) from None
        endpoints[name] = endpoint
    return PreparedDrill(drill=drill, endpoints=endpoints, redactor=redactor,
                         inventory=inventory)
