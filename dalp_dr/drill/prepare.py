"""Set-up that must succeed before anything is recorded or touched: the inventory reads, its
guardrail settings are well formed, and every client population's endpoint answers."""

from __future__ import annotations

from collections.abc import Callable

from dalp_dr import guardrails
from dalp_dr.adapters.base import ServiceEndpoint
from dalp_dr.adapters.http import ApiEndpoint, HttpSettings
from dalp_dr.adapters.s3 import check_backup_tool
from dalp_dr.drill.context import PreparedDrill
from dalp_dr.errors import EndpointError, HintKey, InventoryError, TargetUnreachable
from dalp_dr.inventory import Inventory
from dalp_dr.probes import Web
from dalp_dr.redact import Redactor
from dalp_dr.spec import LoadedDrill
from dalp_dr.spec.parts import SqlEndpoint, base_url_problem

EndpointFactory = Callable[[str, Redactor, str], ServiceEndpoint]
"""(dsn, redactor, marker table) -> endpoint"""


def prepare(drill: LoadedDrill, endpoint_factory: EndpointFactory, *,
            connect: bool = True) -> PreparedDrill:
    """Resolve the inventory and every population's endpoint and (``connect``) prove each
    answers. No side effects: raises InvalidInput (TargetUnreachable, InventoryError) before
    anything is written. ``connect=False`` (a plan that runs nothing) needs no network."""
    inventory = Inventory(drill.inventory)
    redactor = Redactor(inventory.secret_values())
    # guardrail settings must be readable (every host, not mixed) before any connection
    inventory.is_production()
    guardrails.freezes(inventory)
    check_backup_tool(inventory)
    several = drill.spec.populations is not None
    endpoints: dict[str, ServiceEndpoint] = {}
    web = Web.prepare(drill.spec, inventory)
    redactor.add(*web.settings.secrets())
    for name, population in drill.spec.client_populations().items():
        where = f"populations.{name}.endpoint" if several else "endpoint"
        endpoint_spec = population.endpoint
        sql = endpoint_spec.sql()
        sql_where = f"{where}.api.read_back" if endpoint_spec.api is not None else where
        try:
            database = endpoint_factory(_dsn(drill, inventory, sql, sql_where), redactor,
                                        population.marker_table) if sql else None
            if endpoint_spec.api is not None:
                api = endpoint_spec.api
                url = web.url(api.base()) if api.url is not None else \
                    _url(drill, inventory, api.from_inventory, api.host, f"{where}.api") \
                    + api.path
                endpoint: ServiceEndpoint = ApiEndpoint(
                    url, HttpSettings.from_inventory(inventory, api.host), redactor,
                    read_back=database, population=name if several else None)
            else:
                assert database is not None
                endpoint = database
        except EndpointError as exc:
            raise TargetUnreachable(str(exc), source=str(drill.path), field=where) from None
        try:
            if connect:
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
                         inventory=inventory, web=web)


def _dsn(drill: LoadedDrill, inventory: Inventory, sql: SqlEndpoint, where: str) -> str:
    if sql.dsn is not None:
        return sql.dsn
    assert sql.from_inventory is not None
    value = inventory.variable(sql.from_inventory, host=sql.host)
    if not isinstance(value, str) or not value.strip():
        raise TargetUnreachable(f"inventory variable '{sql.from_inventory}' is not a DSN string",
                                source=str(drill.path), field=f"{where}.from_inventory")
    return " ".join(value.split())


def _url(drill: LoadedDrill, inventory: Inventory, variable: str | None, host: str | None,
         where: str) -> str:
    assert variable is not None
    value = inventory.variable(variable, host=host)
    problem = base_url_problem(value.strip()) if isinstance(value, str) else "is not text"
    if problem is not None:
        raise InventoryError(f"inventory variable '{variable}' {problem}",
                             source=str(inventory.path), field=variable)
    return str(value).strip().rstrip("/")
