"""Reading one value from the platform, the way verify checks and converge probes do: a
read-only SQL query through a population's endpoint, a JSON field of an HTTP GET, or a
JSON-RPC call's result (a chain node's ``eth_blockNumber``).

URLs may come from the inventory (``{from_inventory: dalp_api_url, path: /health}``); they
are resolved once, at prepare, so a missing variable is invalid input before anything runs.

DALP's platform-status semantics: a JSON field that says ``no_data`` (or is missing) is never
a value that counts: the probe reads "no data", whatever is expected.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from dalp_dr.adapters.base import ServiceEndpoint
from dalp_dr.adapters.dns import ClientResolver
from dalp_dr.adapters.http import HttpClient, HttpSettings
from dalp_dr.checks import NO_DATA, check_query, connect_read_only
from dalp_dr.errors import EndpointError, InventoryError
from dalp_dr.inventory import Inventory
from dalp_dr.spec import DrillSpec
from dalp_dr.spec.parts import JsonRpcCall, Probe, UrlRef, base_url_problem


class NoData(EndpointError):
    """The platform answered that it cannot tell (``no_data``), or the field is missing:
    never healthy."""


UrlKey = tuple[str, str | None]


class Web:
    """The HTTP side of a run: the inventory's client settings and the URL bases the drill
    names, resolved at prepare. One resolver for all its clients (a probe host's cache)."""

    def __init__(self, settings: HttpSettings, bases: Mapping[UrlKey, str]) -> None:
        self.settings = settings
        self._bases = dict(bases)
        self._resolver = ClientResolver(settings.nameservers)

    @classmethod
    def prepare(cls, spec: DrillSpec, inventory: Inventory) -> Web:
        """InventoryError (invalid input) when a named variable is missing or not a URL."""
        refs = [r for r in _url_refs(spec) if isinstance(r, UrlRef)
                and r.from_inventory is not None]
        bases: dict[UrlKey, str] = {}
        for ref in refs:
            assert ref.from_inventory is not None
            value = inventory.variable(ref.from_inventory, host=ref.host)
            problem = base_url_problem(value.strip()) if isinstance(value, str) else \
                "is not text"
            if problem is not None:
                raise InventoryError(f"'{ref.from_inventory}' {problem}",
                                     source=str(inventory.path), field=ref.from_inventory)
            bases[(ref.from_inventory, ref.host)] = value.strip().rstrip("/")
        settings = HttpSettings.from_inventory(inventory) if refs or any(
            isinstance(r, str) for r in _url_refs(spec)) else HttpSettings()
        return cls(settings, bases)

    def url(self, ref: str | UrlRef) -> str:
        if isinstance(ref, str):
            return ref
        if ref.url is not None:
            return ref.url.rstrip("/") + ref.path if ref.path else ref.url
        assert ref.from_inventory is not None
        return self._bases[(ref.from_inventory, ref.host)] + ref.path

    def client(self, timeout: float) -> HttpClient:
        return HttpClient(self.settings.model_copy(update={"timeout": timeout}),
                          self._resolver)


def _url_refs(spec: DrillSpec) -> Iterable[str | UrlRef]:
    for check in spec.checks:
        if check.http is not None:
            yield check.http
    for probe in itertools.chain(spec.converge, (p.near for p in spec.converge if p.near)):
        if probe is None:
            continue
        if probe.http is not None:
            yield probe.http
        if probe.jsonrpc is not None:
            yield probe.jsonrpc


def field(document: Any, path: str) -> Any:
    """A dotted path in a JSON document (list items by index); None when absent."""
    for part in path.split("."):
        if isinstance(document, dict):
            document = document.get(part)
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


def _number(value: Any) -> Any:
    """A JSON-RPC quantity (``"0x1a"``) as an int; anything else as it is."""
    if isinstance(value, str) and value.lower().startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            return value
    return value


def read_http_field(web: Web, url: str, json_field: str, *, timeout: float) -> Any:
    """The field of ``GET url``'s JSON body. EndpointError when the request fails or does
    not answer 200 with JSON; NoData when the field is missing or says ``no_data``."""
    client = web.client(timeout)
    try:
        reply = client.request("GET", url)
    finally:
        client.close()
    if reply.status != 200:
        raise EndpointError(f"HTTP {reply.status} from {url}")
    if reply.body is None:
        raise EndpointError(f"{url}: the body is not JSON")
    value = field(reply.body, json_field)
    if value is None or value == NO_DATA:
        raise NoData(f"{json_field} is {value or 'missing'}: no data is not healthy")
    return value


def call_jsonrpc(web: Web, call: JsonRpcCall, *, timeout: float) -> Any:
    """A JSON-RPC 2.0 call's result (hex quantities as ints); EndpointError otherwise."""
    url = web.url(call)
    client = web.client(timeout)
    try:
        reply = client.request("POST", url, payload={
            "jsonrpc": "2.0", "id": 1, "method": call.method, "params": list(call.params)})
    finally:
        client.close()
    body = reply.body if isinstance(reply.body, dict) else None
    if reply.status != 200 or body is None:
        raise EndpointError(f"{call.method} at {url}: HTTP {reply.status}"
                            + ("" if body is not None else ", no JSON-RPC answer"))
    if body.get("error") is not None:
        error = body["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise EndpointError(f"{call.method} at {url}: {str(message)[:200]}")
    if "result" not in body:
        raise EndpointError(f"{call.method} at {url}: no result")
    return _number(body["result"])


def read_value(probe: Probe, endpoints: Mapping[str, ServiceEndpoint], web: Web, *,
               timeout: float, params: tuple[Any, ...] = ()) -> Any:
    """One value from ``probe``'s source. EndpointError (NoData included) when it cannot be
    had; the SQL is checked read-only again before it runs (ValueError)."""
    if probe.sql is not None:
        query = check_query(probe.sql)
        endpoint = endpoints[probe.through or next(iter(endpoints))]
        session = connect_read_only(endpoint, timeout)
        try:
            return session.query_value(query, timeout=timeout, params=params)
        finally:
            session.close()
    if probe.http is not None:
        assert probe.json_field is not None
        return read_http_field(web, web.url(probe.http), probe.json_field, timeout=timeout)
    assert probe.jsonrpc is not None
    return call_jsonrpc(web, probe.jsonrpc, timeout=timeout)
