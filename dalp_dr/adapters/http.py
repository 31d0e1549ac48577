"""The platform's API as clients reach it (httpx): the API heartbeat endpoint, and the HTTP
and JSON-RPC reads of verify checks and converge probes.

Clients resolve the API's host name themselves (``dns.ClientResolver``: through the
inventory's nameservers, keeping answers for their TTL, or the system's resolver) and keep
their connection open; a connection that failed is dropped, and the next one looks the name up
again. So a drill whose route is DNS sees the switch when the platform's clients would.

Settings come from the inventory, never the drill file: ``dalp_api_ca_file`` (TLS),
``dalp_api_headers`` (e.g. an Authorization header kept in ansible-vault: every value is
masked in logs and evidence), ``dalp_api_follow_redirects``, ``dalp_api_timeout`` and
``dalp_dns_nameservers``. httpx's errors become ``EndpointError`` here, in one place.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dalp_dr.adapters.base import EndpointSession, ServerIdentity, ServiceEndpoint, WriteAck
from dalp_dr.adapters.dns import ClientResolver
from dalp_dr.errors import EndpointError, InventoryError
from dalp_dr.inventory import Inventory
from dalp_dr.redact import Redactor

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


INVENTORY_VARS = {"ca_file": "dalp_api_ca_file", "headers": "dalp_api_headers",
                  "follow_redirects": "dalp_api_follow_redirects",
                  "timeout": "dalp_api_timeout", "nameservers": "dalp_dns_nameservers"}
"""each setting and the inventory variable it comes from"""


class HttpSettings(BaseModel):
    """How the platform's clients talk HTTP, from the inventory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ca_file: Path | None = None
    headers: dict[str, str] = {}
    follow_redirects: bool = False
    timeout: float = Field(default=2.0, gt=0, le=300)
    nameservers: list[str] | None = None

    @classmethod
    def from_inventory(cls, inventory: Inventory, host: str | None = None) -> HttpSettings:
        """The settings on ``host`` (default: the first host); InventoryError naming the
        variable that is wrong."""
        values: dict[str, Any] = {}
        for field, var in INVENTORY_VARS.items():
            try:
                values[field] = inventory.variable(var, host=host)
            except InventoryError as exc:
                if "is not defined" not in str(exc):
                    raise
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            var = INVENTORY_VARS.get(str(error["loc"][0]), str(error["loc"][0]))
            raise InventoryError(f"{var}: {error['msg']}", source=str(inventory.path),
                                 field=var) from None
        if settings.ca_file is not None and not settings.ca_file.is_file():
            raise InventoryError(f"dalp_api_ca_file: {settings.ca_file} is not a file",
                                 source=str(inventory.path), field="dalp_api_ca_file")
        if settings.nameservers is not None:
            from dalp_dr.adapters.dns import nameservers

            try:
                nameservers(settings.nameservers)
            except ValueError as exc:
                raise InventoryError(f"dalp_dns_nameservers: {exc}",
                                     source=str(inventory.path),
                                     field="dalp_dns_nameservers") from None
        return settings

    def secrets(self) -> list[str]:
        """Header values (and the credential part of an ``Authorization: Scheme value``)."""
        out = []
        for value in self.headers.values():
            out.append(value)
            _scheme, _, credential = value.partition(" ")
            if credential:
                out.append(credential.strip())
        return [s for s in out if len(s) >= 4]


def _translate(exc: Exception, url: str) -> EndpointError:
    """httpx's errors (and those met on the way) as EndpointError: the one place."""
    if isinstance(exc, EndpointError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__.replace("Timeout", " timeout").strip().lower()
        return EndpointError(f"{url}: {kind}")
    if isinstance(exc, httpx.ConnectError):
        return EndpointError(f"{url}: cannot connect ({_reason(exc)})")
    if isinstance(exc, httpx.RemoteProtocolError):
        return EndpointError(f"{url}: the connection broke ({_reason(exc)})")
    if isinstance(exc, httpx.HTTPError | ssl.SSLError | OSError):
        return EndpointError(f"{url}: {type(exc).__name__}: {_reason(exc)}")
    return EndpointError(f"{url}: {type(exc).__name__}: {exc}")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


class Reply(BaseModel, frozen=True):
    status: int
    body: Any = None
    """the JSON body (None when there is none, or it is not JSON)"""
    address: str
    """the address:port the answer came from"""


class HttpClient:
    """One client: its own connections (kept open), its resolver, the inventory's headers.
    A host name is looked up once, when the client first reaches it, and the address kept
    for the client's life, as a client keeps the connection it opened; a client whose
    connection broke is closed and a new one looks the name up again. Used by one thread at
    a time."""

    def __init__(self, settings: HttpSettings, resolver: ClientResolver) -> None:
        self._settings = settings
        self._resolver = resolver
        verify: ssl.SSLContext | bool = True
        if settings.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(settings.ca_file))
        self._addresses: dict[tuple[str, int], str] = {}
        self._client = httpx.Client(verify=verify, trust_env=False, follow_redirects=False,
                                    timeout=settings.timeout,
                                    limits=httpx.Limits(max_connections=2,
                                                        max_keepalive_connections=1))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def request(self, method: str, url: str, *, payload: Any = None,
                params: dict[str, str] | None = None) -> Reply:
        """One request, redirects followed when the inventory says so (the inventory's
        headers only while the origin stays the same); EndpointError on any failure."""
        target = httpx.URL(url, params=params) if params else httpx.URL(url)
        origin = target.scheme, target.host, target.port
        body = json.dumps(payload).encode() if payload is not None else None
        for _ in range(MAX_REDIRECTS + 1):
            try:
                reply = self._send(method, target, body, same_origin=(
                    target.scheme, target.host, target.port) == origin)
            except Exception as exc:
                raise _translate(exc, str(target.copy_with(query=None))) from None
            location = reply.headers.get("location")
            if reply.status_code not in _REDIRECTS or not self._settings.follow_redirects \
                    or not location:
                return Reply(status=reply.status_code, body=_json(reply),
                             address=reply.extensions.get("dalp_address", ""))
            target = target.join(location)
            if target.scheme not in ("http", "https"):
                raise EndpointError(f"{url}: redirected to a {target.scheme} URL")
            if reply.status_code in (301, 302, 303) and method != "GET":
                method, body = "GET", None
        raise EndpointError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _send(self, method: str, target: httpx.URL, body: bytes | None, *,
              same_origin: bool) -> httpx.Response:
        host = target.host
        port = target.port or (443 if target.scheme == "https" else 80)
        address = self._addresses.get((host, port))
        if address is None:
            address = self._resolver.resolve(host, port, timeout=self._settings.timeout)
            self._addresses[(host, port)] = address
        headers = {"Host": target.netloc.decode("ascii"), "Accept": "application/json"}
        if same_origin:
            headers.update(self._settings.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        extensions: dict[str, Any] = {}
        if target.scheme == "https":
            extensions["sni_hostname"] = host
        reply = self._client.request(method, target.copy_with(host=address), content=body,
                                     headers=headers, extensions=extensions)
        shown = f"[{address}]" if ":" in address else address
        reply.extensions = {**reply.extensions, "dalp_address": f"{shown}:{port}"}
        return reply


def _json(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ApiSession:
    """One client of the platform's API (EndpointSession): writes and reads markers through
    the API, or reads them back through SQL on the recovered primary (``read_back``).

    Like a client's connection pool: an HTTP answer, even an error status, leaves the
    connection open for the next session (``close`` hands it back); a connection that broke
    is dropped, and the next session looks the name up again."""

    def __init__(self, client: HttpClient, url: str, read_back: ServiceEndpoint | None,
                 redactor: Redactor, timeout: float, give_back: Any) -> None:
        self._client: HttpClient | None = client
        self._url = url
        self._read_back = read_back
        self._redactor = redactor
        self._timeout = timeout
        self._give_back = give_back
        self._last: WriteAck | None = None

    @property
    def _http(self) -> HttpClient:
        if self._client is None:
            raise EndpointError("the session is closed")
        return self._client

    def _fail(self, problem: str, *, broken: bool = True) -> EndpointError:
        if broken and self._client is not None:
            self._client.close()
            self._client = None
        return EndpointError(self._redactor.text(problem))

    def write_marker(self, run_id: str, seq: int, sent_at: Any) -> WriteAck:
        try:
            reply = self._http.request("POST", self._url, payload={
                "run_id": run_id, "seq": seq, "sent_at": sent_at.isoformat()})
        except EndpointError as exc:
            raise self._fail(str(exc)) from None
        body = reply.body if isinstance(reply.body, dict) else {}
        if not 200 <= reply.status < 300:
            detail = body.get("error") if isinstance(body.get("error"), str) else None
            raise self._fail(f"HTTP {reply.status} from {reply.address}"
                             + (f": {detail[:200]}" if detail else ""), broken=False)
        if _int(body.get("seq")) != seq:
            raise self._fail(f"HTTP {reply.status} from {reply.address} without the echoed "
                             f"sequence number {seq}: not an acknowledgement", broken=False)
        server = body.get("server")
        self._last = WriteAck(timeline=_int(body.get("timeline")),
                              server=server if isinstance(server, str) else reply.address)
        return self._last

    @contextlib.contextmanager
    def _sql(self) -> Iterator[EndpointSession]:
        if self._read_back is None:
            raise EndpointError("this population reaches the platform through its API "
                                "only: no SQL way in (give the API a read_back)")
        session = self._read_back.connect(timeout=self._timeout)
        try:
            yield session
        finally:
            session.close()

    def surviving_markers(self, run_id: str) -> set[int]:
        if self._read_back is not None:
            with self._sql() as session:
                return session.surviving_markers(run_id)
        try:
            reply = self._http.request("GET", self._url, params={"run_id": run_id})
        except EndpointError as exc:
            raise self._fail(str(exc)) from None
        seqs = reply.body.get("seqs") if isinstance(reply.body, dict) else None
        if reply.status != 200 or not isinstance(seqs, list) \
                or not all(_int(s) is not None for s in seqs):
            raise self._fail(f"HTTP {reply.status} from {reply.address}: the read-back "
                             "answer is not {\"seqs\": [...]}", broken=False)
        return {int(s) for s in seqs}

    def identity(self) -> ServerIdentity:
        """The recovered primary's identity through the SQL read-back; through the API alone,
        what its last acknowledgement said (an API that takes writes is not read-only)."""
        if self._read_back is not None:
            with self._sql() as session:
                return session.identity()
        return ServerIdentity(port=None, timeline=self._last.timeline if self._last else None,
                              in_recovery=False)

    def query_value(self, sql: str, *, timeout: float | None = None,
                    params: tuple[Any, ...] = ()) -> Any:
        with self._sql() as session:
            return session.query_value(sql, timeout=timeout, params=params)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            self._give_back(client)


class ApiEndpoint:
    """The platform's API as a ServiceEndpoint (docs/platform-drills.md)."""

    def __init__(self, url: str, settings: HttpSettings, redactor: Redactor, *,
                 read_back: ServiceEndpoint | None = None) -> None:
        self._url = url
        self._settings = settings
        self._redactor = redactor
        redactor.add(*settings.secrets())
        self._read_back = read_back
        self.resolver = ClientResolver(settings.nameservers)
        self._idle: list[HttpClient] = []
        self._lock = threading.Lock()

    @property
    def display(self) -> str:
        shown = httpx.URL(self._url).copy_with(query=None, fragment=None)
        back = f", read back through {self._read_back.display}" if self._read_back else ""
        return f"API {shown}{back}"

    def connect(self, *, timeout: float) -> ApiSession:
        """A client: a connection still open from an earlier session, or a new one (the name
        looked up through the resolver, the connection opened: any HTTP answer to a HEAD
        proves it)."""
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = HttpClient(self._settings.model_copy(
                update={"timeout": min(timeout, self._settings.timeout)}), self.resolver)
            try:
                client.request("HEAD", self._url)
            except EndpointError as exc:
                client.close()
                raise EndpointError(self._redactor.text(str(exc))) from None
        return ApiSession(client, self._url, self._read_back, self._redactor,
                          self._settings.timeout, self._keep)

    def _keep(self, client: HttpClient) -> None:
        with self._lock:
            self._idle.append(client)
            spare = self._idle[:-4]  # a few idle connections, as a client pool keeps
            del self._idle[:-4]
        for old in spare:
            old.close()

    def close(self) -> None:
        """Close the idle connections (the run is over)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()

    def ensure_schema(self) -> None:
        """The API keeps its own table; a SQL read-back makes sure it is there to read."""
        if self._read_back is not None:
            self._read_back.ensure_schema()
