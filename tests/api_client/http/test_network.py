"""Network realities: proxies from the environment, TLS trust, and "cannot reach" told apart from API errors.

Everything stays on 127.0.0.1: a tiny proxy written here, the stand-in served over
https with a throw-away self-signed certificate, and a resolver that refuses every
name but loopback ones (so a DNS failure is real to requests, yet no query leaves).
"""

from __future__ import annotations

import http.client
import select
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import certifi
import pytest
from conftest import REQUEST_BODY, TEST_KEY, closed_port, generate

from api_client.standin import StandInServer

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
             "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Clean proxy/CA environment, and a resolver that answers only loopback names.

    Any other name fails as an unknown host does (socket.gaierror), without a DNS query.
    """
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOOPBACK_NAMES:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# -- a tiny forward proxy -----------------------------------------------------------

class _ProxyHandler(BaseHTTPRequestHandler):
    """CONNECT tunnels (https targets) and absolute-URI forwarding (http targets), loopback only."""

    server: TinyProxy

    def log_message(self, format, *args):
        pass

    def _allowed(self, host: str | None) -> bool:
        if host in LOOPBACK_NAMES:
            return True
        self.send_error(403, "this test proxy only reaches loopback hosts")
        return False

    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        self.server.seen.append(("CONNECT", self.path, self.headers.get("Proxy-Authorization")))
        if not self._allowed(host):
            return
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        sockets = [self.connection, upstream]
        try:
            while True:
                ready, _, _ = select.select(sockets, [], [], 10)
                if not ready:
                    break
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()
            self.close_connection = True

    def _forward(self):
        target = urlsplit(self.path)
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if not self._allowed(target.hostname):
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("proxy-connection", "connection", "keep-alive", "proxy-authorization")}
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    do_GET = do_POST = _forward


class TinyProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[tuple[str, str, str | None]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


@pytest.fixture
def proxy():
    server = TinyProxy()
    yield server
    server.stop()


# -- a stand-in served over https with a self-signed certificate --------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30)
    return str(cert), str(key)


@pytest.fixture(scope="module")
def _tls_server(certificate):
    with StandInServer(key=TEST_KEY, tls=certificate).start() as server:
        yield server


@pytest.fixture
def tls_standin(_tls_server, standin, monkeypatch):
    """The https stand-in, with the environment pointing the pack at it."""
    _tls_server.reset()
    monkeypatch.setenv("AIML_API_BASE", _tls_server.base_url)
    yield _tls_server
    _tls_server.reset()


def _fast_client(api, base_url, **kwargs):
    return api.ApiClient(api.ApiKey(TEST_KEY, "test"), base_url,
                         retry=api.RetryPolicy(base_delay=0.01, max_delay=0.02), **kwargs)


# -- proxies ------------------------------------------------------------------------

def test_http_proxy_from_the_environment_carries_requests_and_downloads(pack, standin, proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.invalid")  # set, so no default bypasses 127.0.0.1
    images, _ = generate(pack)["result"]
    assert images.shape == (1, 512, 512, 3)
    methods = [(method, urlsplit(target).path) for method, target, _ in proxy.seen]
    # The deprecations feed and the price list (GETs, at most daily) go through the proxy too, before the POST.
    assert methods[0] == ("GET", "/v1/models/deprecations")
    assert methods[1] == ("GET", "/v1/models")
    assert methods[2] == ("POST", "/v1/images/generations")
    assert methods[3][0] == "GET" and methods[3][1].startswith("/files/")
    assert standin.post_count == 1 and standin.file_get_count == 1


def test_no_proxy_sends_matching_hosts_direct(pack, standin, proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    generate(pack)
    assert proxy.seen == [] and standin.post_count == 1


def test_https_proxy_tunnels_to_the_https_api(pack, tls_standin, proxy, certificate, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.invalid")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate[0])
    images, _ = generate(pack)["result"]
    assert images.shape == (1, 512, 512, 3)
    tunnels = {target for method, target, _ in proxy.seen if method == "CONNECT"}
    assert tunnels == {f"127.0.0.1:{tls_standin.port}"}
    assert tls_standin.post_count == 1 and tls_standin.file_get_count == 1


def test_dead_proxy_is_a_connection_error_that_hides_the_proxy_password(api, tls_standin, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", f"http://alice:proxy-secret-pw@127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "example.invalid")
    client = _fast_client(api, tls_standin.base_url)
    started = time.monotonic()
    with pytest.raises(api.APIConnectionError, match=r"Cannot reach the AI/ML API.*proxy") as caught:
        client.generate(REQUEST_BODY)
    assert time.monotonic() - started < 5
    assert not isinstance(caught.value, api.APIStatusError)
    assert "proxy-secret-pw" not in str(caught.value)
    assert tls_standin.post_count == 0
    client.close()


# -- TLS -----------------------------------------------------------------------------

def test_certifi_bundle_is_used_unless_the_environment_names_one(api, standin, certificate, monkeypatch):
    assert _fast_client(api, standin.base_url).session.verify == certifi.where()
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])
    assert _fast_client(api, standin.base_url).session.verify == certificate[0]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    with pytest.raises(api.ConfigError, match=r"REQUESTS_CA_BUNDLE.*/nonexistent/ca.pem.*does not exist"):
        _fast_client(api, standin.base_url)


def test_untrusted_certificate_is_a_tls_connection_error_sent_once(pack, api, tls_standin):
    started = time.monotonic()
    with pytest.raises(api.APIConnectionError, match=r"Cannot reach the AI/ML API at 127.0.0.1.*TLS") as caught:
        generate(pack)
    assert time.monotonic() - started < 5
    assert not isinstance(caught.value, api.APIStatusError)
    assert "REQUESTS_CA_BUNDLE" in str(caught.value)
    assert tls_standin.post_count == 0  # the handshake failed: nothing was sent, nothing billed


def test_requests_ca_bundle_makes_a_private_certificate_trusted(pack, tls_standin, certificate, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate[0])
    images, info = generate(pack)["result"]
    assert images.shape == (1, 512, 512, 3)
    assert '"image_urls": [\n    "https://127.0.0.1' in info
    assert tls_standin.post_count == 1


def test_ssl_cert_file_makes_a_private_certificate_trusted(api, tls_standin, certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])
    client = _fast_client(api, tls_standin.base_url)
    response = client.generate(REQUEST_BODY)
    assert client.fetch_image(response.images[0]).startswith(b"\x89PNG")
    client.close()


# -- DNS and refused connections -----------------------------------------------------

def test_unknown_host_is_a_dns_connection_error_not_an_api_error(api):
    client = _fast_client(api, "https://api.example.invalid/v1")
    started = time.monotonic()
    with pytest.raises(api.APIConnectionError, match=r"at api.example.invalid: .*DNS") as caught:
        client.generate(REQUEST_BODY)
    assert time.monotonic() - started < 5
    assert not isinstance(caught.value, api.APIStatusError)
    client.close()


def test_refused_connection_says_so(api):
    client = _fast_client(api, f"http://127.0.0.1:{closed_port()}/v1")
    with pytest.raises(api.APIConnectionError, match="connection was refused"):
        client.generate(REQUEST_BODY)
    client.close()
