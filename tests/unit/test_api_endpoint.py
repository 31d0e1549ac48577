"""The API heartbeat's client (dalp_dr/adapters/http.py) against a local HTTP server playing a
platform API (``json_api``): what counts as an acknowledgement, connections kept across error
answers and dropped when broken, the HTTP read-back, the inventory's headers (masked),
redirects, and TLS with a CA file."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dalp_dr.adapters.http import ApiEndpoint, HttpSettings
from dalp_dr.errors import EndpointError
from dalp_dr.redact import Redactor
from tests.conftest import JsonApi, Nameserver

TOKEN = "Bearer s3cr3t-api-token"
NOW = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)


def platform(api: JsonApi, *, echo: bool = True, status: int = 200) -> dict[str, list[int]]:
    """The heartbeat contract in memory: POST stores and echoes, GET reads back."""
    stored: dict[str, list[int]] = {}

    def heartbeat(method: str, path: str, body: bytes) -> tuple[int, object]:
        if method == "POST":
            marker = json.loads(body)
            if status != 200:
                return status, {"error": f"database unavailable ({TOKEN} rejected)"}
            stored.setdefault(marker["run_id"], []).append(marker["seq"])
            return 200, ({"seq": marker["seq"], "timeline": 2, "server": "site-b"} if echo
                         else {"ok": True})
        run_id = unquote(path.partition("run_id=")[2])
        return 200, {"seqs": stored.get(run_id, [])}

    api.pages["/dr/heartbeat"] = (200, heartbeat)
    return stored


def endpoint(url: str, **settings: object) -> ApiEndpoint:
    return ApiEndpoint(url + "/dr/heartbeat", HttpSettings.model_validate(settings),
                       Redactor())


def test_an_acknowledgement_echoes_the_sequence_number(json_api: JsonApi) -> None:
    stored = platform(json_api)
    session = endpoint(json_api.url).connect(timeout=2)
    ack = session.write_marker("run-1", 7, NOW)
    assert ack.timeline == 2 and ack.server == "site-b"
    assert stored == {"run-1": [7]}
    assert session.surviving_markers("run-1") == {7}
    assert session.identity().timeline == 2 and not session.identity().in_recovery


def test_populations_through_one_api_keep_their_markers_apart(json_api: JsonApi) -> None:
    """Hot-hot through a global load balancer: the lost site's clients land on the survivor's
    API, where its own clients write too. Each population's markers carry its own run id."""
    stored = platform(json_api)
    url = json_api.url + "/dr/heartbeat"
    lost, own = (ApiEndpoint(url, HttpSettings(), Redactor(), population=name).connect(timeout=2)
                 for name in ("site-a", "site-b"))
    lost.write_marker("run-1", 1, NOW)
    own.write_marker("run-1", 1, NOW)
    own.write_marker("run-1", 2, NOW)
    assert stored == {"run-1/site-a": [1], "run-1/site-b": [1, 2]}
    assert lost.surviving_markers("run-1") == {1}
    assert own.surviving_markers("run-1") == {1, 2}


def test_a_2xx_without_the_echo_is_not_an_acknowledgement(json_api: JsonApi) -> None:
    platform(json_api, echo=False)
    session = endpoint(json_api.url).connect(timeout=2)
    with pytest.raises(EndpointError, match="without the echoed sequence number 3"):
        session.write_marker("run-1", 3, NOW)


def test_an_error_answer_keeps_the_connection_a_broken_one_is_dropped(
        json_api: JsonApi) -> None:
    platform(json_api, status=503)
    api = endpoint(json_api.url)
    session = api.connect(timeout=2)
    with pytest.raises(EndpointError, match="HTTP 503"):
        session.write_marker("run-1", 1, NOW)
    session.close()
    api.connect(timeout=2).close()  # the open connection again: no new HEAD, no lookup
    assert [r[0] for r in json_api.requests] == ["HEAD", "POST"]
    assert len(api.resolver.changes) == 1

    json_api.close()  # the server goes away: the connection breaks
    session = api.connect(timeout=2)
    with pytest.raises(EndpointError, match=r"cannot connect|broke"):
        session.write_marker("run-1", 2, NOW)
    with pytest.raises(EndpointError, match="cannot connect"):
        api.connect(timeout=1)  # a new connection: looked up again, refused


def test_the_inventory_headers_are_sent_and_masked(json_api: JsonApi) -> None:
    platform(json_api, status=503)
    redactor = Redactor()
    api = ApiEndpoint(json_api.url + "/dr/heartbeat",
                      HttpSettings(headers={"Authorization": TOKEN}), redactor)
    session = api.connect(timeout=2)
    with pytest.raises(EndpointError) as failed:
        session.write_marker("run-1", 1, NOW)
    assert all(r[2].get("Authorization") == TOKEN for r in json_api.requests)
    assert "s3cr3t-api-token" not in str(failed.value) and "rejected" in str(failed.value)
    assert "s3cr3t-api-token" not in redactor.text(f"token was {TOKEN}")


def test_redirects_only_when_the_inventory_says_and_never_with_its_headers_elsewhere(
        ) -> None:
    other = JsonApi()
    server = _redirect_to(other.url + "/dr/heartbeat")
    redirecting = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        stored = platform(other)
        plain = endpoint(redirecting).connect(timeout=2)
        with pytest.raises(EndpointError, match="HTTP 307"):
            plain.write_marker("run-1", 1, NOW)
        follows = ApiEndpoint(redirecting + "/dr/heartbeat",
                              HttpSettings(follow_redirects=True,
                                           headers={"Authorization": TOKEN}), Redactor())
        follows.connect(timeout=2).write_marker("run-1", 2, NOW)
        assert stored == {"run-1": [2]}
        posted = [r for r in other.requests if r[0] == "POST"]
        assert posted and "Authorization" not in posted[0][2]
    finally:
        other.close()
        server.shutdown()
        server.server_close()


def _redirect_to(target: str) -> ThreadingHTTPServer:
    """A server that answers every request with a 307 to ``target``."""

    class Redirect(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(307)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_HEAD = _answer

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _certificates(root: Path) -> tuple[Path, Path, Path]:
    """A lab CA and a server certificate for 127.0.0.1 signed by it."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dalp-dr test CA")])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(start)
          .not_valid_after(start + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api")]))
            .issuer_name(name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = root / "ca.pem", root / "cert.pem", root / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_tls_with_the_inventory_ca_file(json_api: JsonApi, tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    platform(json_api)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = json_api._httpd  # the same handler, over TLS
    server.socket = context.wrap_socket(server.socket, server_side=True)
    url = json_api.url.replace("http://", "https://")

    trusted = endpoint(url, ca_file=ca).connect(timeout=2)
    assert trusted.write_marker("run-1", 1, NOW).server == "site-b"
    with pytest.raises(EndpointError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        endpoint(url).connect(timeout=2)  # the system's CAs do not know the lab's


def test_new_connections_look_the_name_up_and_follow_a_dns_change_within_the_ttl(
        json_api: JsonApi, nameserver: Nameserver) -> None:
    """Site A keeps answering 503 and closing each connection (an ingress with no healthy
    backend); DNS moves the name elsewhere: a client opening new connections follows the
    change once the cached answer's TTL (1 s) has passed, not per connection."""

    def closing(*_: object) -> tuple[int, object]:
        return 503, {"error": "no healthy upstream"}

    json_api.pages["/dr/heartbeat"] = (200, closing)
    json_api.close_each = True
    port = json_api.url.rsplit(":", 1)[1]
    api = ApiEndpoint(f"http://api.test:{port}/dr/heartbeat",
                      HttpSettings(nameservers=[nameserver.address]), Redactor())
    session = api.connect(timeout=2)
    asked_first = nameserver.queries
    nameserver.addresses = ["127.0.0.3"]  # the name moves (nothing listens there)
    seen: list[str] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not any("cannot connect" in s for s in seen):
        try:
            session.write_marker("run-1", len(seen), NOW)
        except EndpointError as exc:
            seen.append(str(exc))
        time.sleep(0.05)
    assert any("HTTP 503" in s for s in seen)  # the old site, while the answer was cached
    assert any("cannot connect" in s for s in seen)  # then the new address
    assert asked_first == 1 and 2 <= nameserver.queries <= 4  # once per TTL, not per connection
    assert [sorted(r.addresses) for r in api.resolver.changes] == [["127.0.0.1"], ["127.0.0.3"]]
