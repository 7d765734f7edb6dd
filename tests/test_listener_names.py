"""Two listeners with one name, as real Envoy 1.40 treats them: in the bootstrap the first one is
kept and the other ignored (Envoy says so only in its debug log; wasmlab warns), and an LDS update
(``proxy.update``) that names a listener twice is reported rejected, yet the first of the name took
effect."""

from __future__ import annotations

import copy

import pytest
import yaml

from helpers import both
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.config import builder as b


def _bootstrap(*bodies: str, name: str = "l0", stat_prefix: str = "ingress") -> dict:
    """One listener per body, all named ``name``, each answering its body directly."""
    data = b.bootstrap([b.http_listener(name, 10000, routes=[b.direct_response("/", 200, bodies[0])])])
    first = data["static_resources"]["listeners"][0]
    first["filter_chains"][0]["filters"][0]["typed_config"]["stat_prefix"] = stat_prefix
    for i, body in enumerate(bodies[1:], start=1):
        other = copy.deepcopy(first)
        other["address"]["socket_address"]["port_value"] = 10000 + i
        routes = other["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
        routes[0]["direct_response"]["body"] = {"inline_string": body}
        data["static_resources"]["listeners"].append(other)
    return data


@pytest.mark.envoy
def test_a_bootstrap_listener_named_twice_keeps_the_first_as_envoy_does():
    cfg = yaml.safe_dump(_bootstrap("first\n", "second\n"))
    ok, message = real.validate(cfg)
    assert ok, message
    ours, _ = both(cfg, [{"method": "GET", "path": "/"}])  # (asserts Envoy answers the same)
    assert ours[0].body == b"first\n"
    with Proxy.from_yaml(cfg, workers=1) as p:
        logs = p.logs
    assert any(
        "static_resources.listeners[1].name: a listener named 'l0' is defined above: Envoy keeps the first one"
        " and ignores this one" in ln
        for ln in logs
    ), logs


@pytest.mark.envoy
def test_an_update_naming_a_listener_twice_is_rejected_yet_applies_the_first(envoy_bin):
    first = yaml.safe_dump(_bootstrap("one\n"))
    second = yaml.safe_dump(_bootstrap("two\n", "three\n", stat_prefix="x"))
    with Proxy.from_yaml(first, workers=1) as p, real.run(first, workers=1, dynamic=True) as e:
        ours, theirs = p.update(second), e.update(second)
        assert not ours.accepted and not theirs.accepted
        assert ours.reason == theirs.reason == "Error adding/updating listener(s) l0: duplicate listener l0 found"
        mine, env = p.request("GET", "/"), e.request("GET", "/")
        assert mine.body == env.body == b"two\n"
        assert p.stats().get("http.x.downstream_rq_total") == e.stats().get("http.x.downstream_rq_total") == 1
        assert "[warning][upstream] lds: listener 'l0' config rejected: duplicate listener l0 found" in p.logs


def test_an_update_repeating_a_listener_unchanged_is_still_rejected():
    """The first of the name is the running one: nothing changes, and the repeat is refused."""
    first = yaml.safe_dump(_bootstrap("one\n"))
    with Proxy.from_yaml(first, workers=1) as p:
        result = p.update(yaml.safe_dump(_bootstrap("one\n", "other\n")))
        assert not result.accepted
        assert result.reason == "Error adding/updating listener(s) l0: duplicate listener l0 found"
        assert p.request("GET", "/").body == b"one\n"


def _with_empty_chain(data: dict) -> dict:
    """``data`` plus a listener ``bare`` whose one filter chain has no network filters."""
    bare = copy.deepcopy(data["static_resources"]["listeners"][0])
    bare["name"] = "bare"
    bare["address"]["socket_address"]["port_value"] = 10009
    bare["filter_chains"] = [{"name": "nothing"}]
    data["static_resources"]["listeners"].append(bare)
    return data


@pytest.mark.envoy
def test_a_listener_without_network_filters_is_accepted_and_closes_each_connection_like_envoy(envoy_bin):
    import socket

    cfg = yaml.safe_dump(_with_empty_chain(_bootstrap("hello\n")))
    ok, message = real.validate(cfg)
    assert ok, message
    with real.run(cfg, workers=1) as e:
        assert e.request("GET", "/", listener="l0").body == b"hello\n"
        with socket.create_connection(("127.0.0.1", e.listener_ports["bare"]), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            try:
                got = s.recv(100)
            except ConnectionResetError:
                got = b""
        assert got == b""  # closed at once, nothing answered
    with Proxy.from_yaml(cfg, workers=1) as p:
        assert p.request("GET", "/", listener="l0").body == b"hello\n"
        conn = p.connect("bare")
        conn.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert conn.recv(timeout=5) == b""
        assert conn.closed
        logs = p.logs
    assert any(
        "static_resources.listeners[1].filter_chains[0]: listener 'bare' has no network filters: Envoy accepts it"
        " and closes every connection to it at once" in ln
        for ln in logs
    ), logs


def _broken_second(data: dict) -> dict:
    """The second listener (a duplicate name) routes to a cluster nobody defines."""
    second = data["static_resources"]["listeners"][1]
    second["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"] = [
        {"match": {"prefix": "/"}, "route": {"cluster": "nosuch"}}
    ]
    return data


@pytest.mark.envoy
def test_the_ignored_listener_is_not_built_so_its_errors_do_not_count_like_envoy(envoy_bin):
    cfg = yaml.safe_dump(_broken_second(_bootstrap("first\n", "second\n")))
    ok, message = real.validate(cfg)
    assert ok, message
    ours, _ = both(cfg, [{"method": "GET", "path": "/"}])
    assert ours[0].body == b"first\n"


@pytest.mark.envoy
def test_an_update_whose_repeated_listener_is_broken_still_applies_the_first(envoy_bin):
    first = yaml.safe_dump(_bootstrap("one\n"))
    second = yaml.safe_dump(_broken_second(_bootstrap("two\n", "three\n")))
    with Proxy.from_yaml(first, workers=1) as p, real.run(first, workers=1, dynamic=True) as e:
        ours, theirs = p.update(second), e.update(second)
        assert (ours.accepted, ours.reason) == (theirs.accepted, theirs.reason)
        assert p.request("GET", "/").body == e.request("GET", "/").body == b"two\n"


@pytest.mark.envoy
def test_an_unnamed_listener_never_takes_a_given_name(envoy_bin):
    """Envoy names an unnamed listener with a UUID; wasmlab's ``listener_<i>`` steps aside."""
    data = _bootstrap("named\n", "unnamed\n")
    data["static_resources"]["listeners"][0]["name"] = "listener_1"
    del data["static_resources"]["listeners"][1]["name"]
    cfg = yaml.safe_dump(data)
    ok, message = real.validate(cfg)
    assert ok, message
    with Proxy.from_yaml(cfg, workers=1) as p:
        assert p.request("GET", "/", listener="listener_1").body == b"named\n"
        assert p.request("GET", "/", listener="listener_1_1").body == b"unnamed\n"
