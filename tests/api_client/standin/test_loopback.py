"""The stand-in's two servers share one loopback start-up (api_client/standin/loopback.py), and its
deprecations feed (deprecations.py) answers without a server."""

from __future__ import annotations

import json
import socket
from http.client import HTTPConnection

import pytest

from api_client.standin import LoraHost, StandInServer
from api_client.standin.deprecations import DEFAULT_DEPRECATIONS, DeprecationsFeed, check_deprecations
from api_client.standin.loopback import is_loopback

SERVERS = {"stand-in": (StandInServer, "/_standin/stats"), "LoRA host": (LoraHost, "/_lora/stats")}


def _get(url_host: str, port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = HTTPConnection(url_host, port, timeout=30)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.8.9.10"])
def test_loopback_addresses_are_recognised_without_resolving_names(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "::", "example.com", "localhost.example.com", ""])
def test_other_addresses_are_not_loopback(host):
    assert not is_loopback(host)


@pytest.mark.parametrize("name", SERVERS)
def test_each_server_refuses_a_non_loopback_host_naming_itself(name):
    cls, _ = SERVERS[name]
    with pytest.raises(ValueError, match=f"the {name} only binds to loopback addresses, not '0.0.0.0'"):
        cls(host="0.0.0.0")


@pytest.mark.parametrize("name", SERVERS)
def test_each_server_starts_once_serves_and_gives_its_port_back_on_stop(name):
    cls, stats_path = SERVERS[name]
    server = cls()
    with pytest.raises(RuntimeError, match=f"{name} not started"):
        _ = server.port
    with server:
        assert server.root_url == f"http://127.0.0.1:{server.port}"
        with pytest.raises(RuntimeError, match=f"{name} already started"):
            server.start()
        status, headers, raw = _get("127.0.0.1", server.port, stats_path)
        assert status == 200 and headers["content-type"].startswith("application/json")
        assert isinstance(json.loads(raw), dict) and int(headers["content-length"]) == len(raw)
        port = server.port
    assert server.port == port  # still known after stop(), so URLs stay printable
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    server.stop()  # a second stop is harmless


def test_the_stand_in_serves_ipv6_loopback_too():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = StandInServer(host="::1").start()
    except OSError as exc:
        pytest.skip(f"::1 cannot be bound here ({exc})")
    with server:
        assert server.root_url == f"http://[::1]:{server.port}" and server.base_url.endswith("/v1")
        status, _, _ = _get("::1", server.port, "/_standin/stats")
        assert status == 200


def test_stop_hangs_up_an_idle_keep_alive_connection():
    server = StandInServer().start()
    conn = HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/_standin/stats")
        response = conn.getresponse()
        response.read()
        assert response.status == 200 and not response.will_close  # kept alive, idle in the server's handler
        server.stop()
        assert conn.sock is not None and conn.sock.recv(1) == b""  # hung up, not left hanging
    finally:
        conn.close()
        server.stop()


def test_head_answers_carry_the_length_but_no_body():
    with LoraHost() as host:
        status, headers, raw = _get("127.0.0.1", host.port, "/status/404/x", method="HEAD")
        assert status == 404 and int(headers["content-length"]) > 0 and raw == b""


def test_the_deprecations_feed_finds_a_withdrawn_model_by_id_or_alias_and_resets():
    feed = DeprecationsFeed()
    default = DEFAULT_DEPRECATIONS[0]
    assert feed.withdrawn(default["id"])["replaced_by"] == default["replaced_by"]
    assert feed.withdrawn(default["aliases"][0]) is not None and feed.withdrawn("flux-2-lora") is None
    feed.replace(check_deprecations([{"id": "blackforestlabs/flux-2-lora", "aliases": ["flux-2-lora"],
                                      "status": "deprecated", "shutdown_at": "2027-01-01"}]))
    assert feed.withdrawn("flux-2-lora") is None and feed.withdrawn(default["id"]) is None
    answer = feed.answer("status=deprecated", {}, {})
    assert answer.status == 200 and [e["id"] for e in json.loads(answer.body)["data"]] == [
        "blackforestlabs/flux-2-lora"]
    assert feed.answer("", {"if-none-match": answer.headers["ETag"]}, {}).status == 304
    feed.reset()
    assert [e["id"] for e in feed.entries()] == [default["id"]]


@pytest.mark.parametrize("entries, message", [
    ({"id": "x"}, "must be a list"),
    ([{"id": "x", "status": "gone"}], "status must be one of"),
    ([{"id": "x", "status": "withdrawn", "when": "now"}], "unknown deprecation entry keys"),
    ([{"id": "x", "status": "withdrawn", "shutdown_at": "soon"}], "YYYY-MM-DD"),
])
def test_malformed_deprecation_entries_are_refused(entries, message):
    with pytest.raises(ValueError, match=message):
        check_deprecations(entries)
