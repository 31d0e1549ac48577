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
import functools
import json
import re
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

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

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""an HTTP header name (RFC 9110 token)"""
_SECRET_HEADER = re.compile(r"(authorization|cookie|token|secret|key|passw|signature)",
                            re.IGNORECASE)
MAX_BODY = 1 << 20
"""the most of an answer's body a client reads (1 MiB): a health or marker answer is small"""


class HttpSettings(BaseModel):
    """How the platform's clients talk HTTP, from the inventory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ca_file: Path | None = None
    headers: dict[str, str] = {}
    follow_redirects: bool = False
    timeout: float = Field(default=2.0, gt=0, le=300)
    nameservers: list[str] | None = None
    _tls: ssl.SSLContext | None = PrivateAttr(default=None)

    @classmethod
    def from_inventory(cls, inventory: Inventory, host: str | None = None) -> HttpSettings:
        """The settings on ``host`` (default: the first host); InventoryError naming the
        variable that is wrong (never echoing a header's value). A relative CA file is
        found next to the inventory."""
        values: dict[str, Any] = {}
        for field, var in INVENTORY_VARS.items():
            try:
                values[field] = inventory.variable(var, host=host)
            except InventoryError as exc:
                if "is not defined" not in str(exc):
                    raise
        source = str(inventory.path)
        headers = values.get("headers")
        if isinstance(headers, dict):
            for name, value in headers.items():
                where = f"dalp_api_headers.{name}"
                if not isinstance(name, str) or not _TOKEN.match(name):
                    raise InventoryError(f"{where}: not a valid header name", source=source,
                                         field="dalp_api_headers")
                if not isinstance(value, str):
                    raise InventoryError(f"{where}: the value must be text", source=source,
                                         field=where)
                if any(c in value for c in "\r\n\0") or not value.isascii():
                    raise InventoryError(
                        f"{where}: the value holds a line break, NUL or non-ASCII character "
                        "(a vaulted value made with echo ends in a newline: use "
                        "'printf %s ... | ansible-vault encrypt_string')", source=source,
                        field=where)
        ca_file = values.get("ca_file")
        if isinstance(ca_file, str) and ca_file and not Path(ca_file).is_absolute():
            values["ca_file"] = str(inventory.path.parent / ca_file)
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            var = INVENTORY_VARS.get(str(error["loc"][0]), str(error["loc"][0]))
            raise InventoryError(f"{var}: {error['msg']}", source=source, field=var) from None
        if settings.ca_file is not None:
            try:
                settings.tls()
            except (ssl.SSLError, OSError) as exc:
                raise InventoryError(f"dalp_api_ca_file: {settings.ca_file}: cannot be read "
                                     f"as PEM certificates ({_reason(exc)})", source=source,
                                     field="dalp_api_ca_file") from None
        if settings.nameservers is not None:
            from dalp_dr.adapters.dns import nameservers

            try:
                nameservers(settings.nameservers)
            except ValueError as exc:
                raise InventoryError(f"dalp_dns_nameservers: {exc}", source=source,
                                     field="dalp_dns_nameservers") from None
        return settings

    def tls(self) -> ssl.SSLContext:
        """The TLS trust: the inventory's CA file, or the system's (each read once)."""
        if self.ca_file is None:
            return _system_tls()
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=str(self.ca_file))
        return self._tls

    def secrets(self) -> list[str]:
        """Values of headers that carry credentials (and the credential part of an
        ``Authorization: Scheme value``), as written and stripped."""
        out = []
        for name, value in self.headers.items():
            if not _SECRET_HEADER.search(name):
                continue
            out += [value, value.strip()]
            _scheme, _, credential = value.strip().partition(" ")
            if credential:
                out.append(credential.strip())
        return [s for s in dict.fromkeys(out) if len(s) >= 4]


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


class _Resolving(httpcore.SyncBackend):
    """httpcore's network backend, looking each new connection's host name up through the
    client's resolver (its cache honours the TTL): a connection kept open is not looked up
    again, a new one is. The URL keeps the name: Host header, TLS SNI and certificate check
    are the name's."""

    def __init__(self, resolver: ClientResolver, timeout: float) -> None:
        self._resolver = resolver
        self._timeout = timeout

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            address = self._resolver.resolve(host, port, timeout=timeout or self._timeout)
        except EndpointError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


@functools.cache
def _system_tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class _Transport(httpx.HTTPTransport):
    def __init__(self, settings: HttpSettings, resolver: ClientResolver) -> None:
        tls = settings.tls()
        super().__init__(verify=tls, trust_env=False)
        # httpx builds its own connection pool without a network backend: this one looks
        # host names up through the client's resolver (httpx is pinned below 0.29)
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls, max_connections=2, max_keepalive_connections=1,
            network_backend=_Resolving(resolver, settings.timeout))


class HttpClient:
    """One client: its own connections (kept open across answers, error answers too), its
    resolver, the inventory's headers. Each new connection looks the host name up (through
    the resolver's cache); a connection kept open is not looked up again. Each request,
    redirects included, ends within its timeout (its body read within it, at most
    ``MAX_BODY``). Used by one thread at a time."""

    def __init__(self, settings: HttpSettings, resolver: ClientResolver) -> None:
        self._settings = settings
        self._client = httpx.Client(transport=_Transport(settings, resolver),
                                    trust_env=False, follow_redirects=False,
                                    timeout=settings.timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def request(self, method: str, url: str, *, payload: Any = None,
                params: dict[str, str] | None = None, timeout: float | None = None) -> Reply:
        """One request, redirects followed when the inventory says so (the inventory's
        headers only while the origin stays the same), all within ``timeout`` (default: the
        inventory's); EndpointError on any failure."""
        target = httpx.URL(url, params=params) if params else httpx.URL(url)
        origin = target.scheme, target.host, target.port
        body = json.dumps(payload).encode() if payload is not None else None
        deadline = time.monotonic() + (timeout or self._settings.timeout)
        for _ in range(MAX_REDIRECTS + 1):
            shown = str(target.copy_with(query=None))
            try:
                status, headers, raw, address = self._send(
                    method, target, body, deadline,
                    same_origin=(target.scheme, target.host, target.port) == origin)
            except Exception as exc:
                raise _translate(exc, shown) from None
            location = headers.get("location")
            if status not in _REDIRECTS or not self._settings.follow_redirects \
                    or not location:
                return Reply(status=status, body=_json(raw), address=address)
            target = target.join(location)
            if target.scheme not in ("http", "https"):
                raise EndpointError(f"{url}: redirected to a {target.scheme} URL")
            if status in (301, 302, 303) and method not in ("GET", "HEAD"):
                method, body = "GET", None
        raise EndpointError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _send(self, method: str, target: httpx.URL, body: bytes | None, deadline: float,
              *, same_origin: bool) -> tuple[int, httpx.Headers, bytes, str]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise httpx.ReadTimeout("no answer within the request's time")
        headers = {"Accept": "application/json"}
        if same_origin:
            headers.update(self._settings.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self._client.build_request(method, target, content=body, headers=headers,
                                             timeout=left)
        reply = self._client.send(request, stream=True)
        try:
            address = _peer(reply)
            chunks, size = [], 0
            for chunk in reply.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY:
                    raise EndpointError(f"{target}: the answer is larger than "
                                        f"{MAX_BODY // 1024} KiB")
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the answer did not arrive within the "
                                            "request's time")
                chunks.append(chunk)
            return reply.status_code, reply.headers, b"".join(chunks), address
        finally:
            reply.close()


def _peer(reply: httpx.Response) -> str:
    """The address:port the answer came from."""
    stream = reply.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not isinstance(peer, tuple) or len(peer) < 2:
        return ""
    host = str(peer[0])
    return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
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
                 redactor: Redactor, timeout: float, give_back: Any,
                 population: str | None = None) -> None:
        self._client: HttpClient | None = client
        self._population = population
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

    def _scoped(self, run_id: str) -> str:
        """The run id the markers carry: several populations that reach one API (hot-hot:
        through a global load balancer, the lost site's clients land on the survivor's API,
        in the same table as its own clients') each keep theirs under ``<run id>/<population>``,
        so their sequence numbers never meet."""
        return f"{run_id}/{self._population}" if self._population else run_id

    def write_marker(self, run_id: str, seq: int, sent_at: Any) -> WriteAck:
        try:
            reply = self._http.request("POST", self._url, payload={
                "run_id": self._scoped(run_id), "seq": seq, "sent_at": sent_at.isoformat()})
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
        session = _read_only(self._read_back, self._timeout)
        try:
            yield session
        finally:
            session.close()

    def surviving_markers(self, run_id: str) -> set[int]:
        run_id = self._scoped(run_id)
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


def _read_only(endpoint: ServiceEndpoint, timeout: float) -> EndpointSession:
    from dalp_dr.adapters.postgres import PostgresEndpoint

    if isinstance(endpoint, PostgresEndpoint):
        return endpoint.connect(timeout=timeout, read_only=True)
    return endpoint.connect(timeout=timeout)


class ApiEndpoint:
    """The platform's API as a ServiceEndpoint (docs/platform-drills.md)."""

    def __init__(self, url: str, settings: HttpSettings, redactor: Redactor, *,
                 read_back: ServiceEndpoint | None = None, population: str | None = None
                 ) -> None:
        self._url = url
        self._population = population
        self._settings = settings
        self._redactor = redactor
        redactor.add(*settings.secrets())
        self._read_back = read_back
        self.resolver = ClientResolver(settings.nameservers)
        self._idle: list[HttpClient] = []
        self._lock = threading.Lock()

    @property
    def sql_endpoint(self) -> ServiceEndpoint | None:
        """The SQL read-back (checks and probes run their SQL there, not through the API)."""
        return self._read_back

    @property
    def display(self) -> str:
        shown = httpx.URL(self._url).copy_with(query=None, fragment=None, username=None,
                                                password=None)
        back = f", read back through {self._read_back.display}" if self._read_back else ""
        return f"API {shown}{back}"

    def connect(self, *, timeout: float) -> ApiSession:
        """A client: a connection still open from an earlier session, or a new one (the name
        looked up through the resolver, the connection opened: any HTTP answer to a HEAD
        proves it)."""
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = HttpClient(self._settings, self.resolver)
            try:
                client.request("HEAD", self._url, timeout=min(timeout, self._settings.timeout))
            except EndpointError as exc:
                client.close()
                raise EndpointError(self._redactor.text(str(exc))) from None
        return ApiSession(client, self._url, self._read_back, self._redactor,
                          self._settings.timeout, self._keep, self._population)

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
        """The API keeps its own table: a SQL read-back only proves it can read it (a
        read-only role cannot create tables, and need not)."""
        if self._read_back is None:
            return
        session = _read_only(self._read_back, self._settings.timeout)
        try:
            session.surviving_markers("dalp-dr-read-back-check")
        except EndpointError as exc:
            raise EndpointError(f"the SQL read-back cannot read the API's marker table: "
                                f"{exc}") from None
        finally:
            session.close()
