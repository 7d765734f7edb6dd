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
