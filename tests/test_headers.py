"""HeaderMap: Envoy's ordered, case-insensitive, multi-value map."""

import pytest

from wasmlab import HeaderMap


def test_names_are_lower_cased_and_values_kept():
    h = HeaderMap([("X-A", "One"), ("x-b", "2")])
    assert list(h) == [("x-a", "One"), ("x-b", "2")]
    assert h.get("X-A") == "One"
    assert "X-B" in h


def test_repeated_names_keep_every_value_in_order():
    h = HeaderMap([("x-a", "1"), ("x-b", "2"), ("x-a", "3")])
    assert h.get_all("x-a") == ["1", "3"]
    assert h.get("x-a") == "1"
    assert h.get_joined("x-a") == "1,3"
    assert len(h) == 3


def test_pseudo_headers_stay_in_front():
    h = HeaderMap([("x-a", "1")])
    h.add(":path", "/")
    h.add(":method", "GET")
    assert h.keys() == [":path", ":method", "x-a"]


def test_set_removes_all_values_and_appends_at_the_end():
    h = HeaderMap([("x-a", "1"), ("x-b", "2"), ("x-a", "3")])
    h.set("x-a", "new")
    assert list(h) == [("x-b", "2"), ("x-a", "new")]


def test_remove_and_byte_size():
    h = HeaderMap({"ab": "cd", "e": "f"})
    assert h.byte_size() == 6
    assert h.remove("AB") == 1
    assert h.remove("missing") == 0
    assert list(h) == [("e", "f")]


def test_bad_values_are_rejected_with_a_clear_error():
    with pytest.raises(TypeError, match="header value must be str or bytes"):
        HeaderMap([("x", object())])
    with pytest.raises(TypeError, match="pairs"):
        HeaderMap([("x",)])


def test_the_name_index_follows_every_change():
    """HeaderMap keeps the entries' names beside them (a speed-up): after any sequence of
    changes, on any kind of map, both must agree and every read must match a plain scan."""
    import random

    from wasmlab.http.inline_headers import NO_INLINE, REQUEST_HEADERS_INLINE, RESPONSE_HEADERS_INLINE

    rng = random.Random(7)
    names = [":path", ":method", ":authority", ":status", "host", "X-A", "x-a", "cookie", "accept", "date", "te", "via"]
    for inline in (REQUEST_HEADERS_INLINE, RESPONSE_HEADERS_INLINE, NO_INLINE):
        h = HeaderMap(None, inline)
        for _ in range(400):
            op = rng.randrange(10)
            name, value = rng.choice(names), rng.choice(["", "1", "v"])
            if op < 3:
                h.add(name, value)
            elif op == 3:
                h.set(name, value)
            elif op == 4:
                h.remove(name)
            elif op == 5:
                h.set_in_place(name.lower(), value)
            elif op == 6:
                h.add_inline(name.lower(), value)
            elif op == 7:
                h.add_lowered(name.lower(), value)
            elif op == 8:
                h = rng.choice([h.copy(), HeaderMap(h), h.without_pseudo()])
            else:
                h.replace_all(list(h)[::-1])
            entries = list(h)
            assert h.keys() == [k for k, _ in entries]
            key = name.lower()
            assert (name in h) == any(k == key for k, _ in entries)
            assert h.get(name) == next((v for k, v in entries if k == key), None)
            assert h.get_all(name) == [v for k, v in entries if k == key]
            pseudo = [k.startswith(":") for k, _ in entries]
            assert pseudo == sorted(pseudo, reverse=True)  # pseudo-headers in front
