from orchdsl.sdk.values import configured_changes, get_path, merge_configured, set_path
from orchdsl.plan import UNKNOWN


def test_only_configured_attributes_are_compared():
    prior = {"image": "x", "env": {"A": "1", "ADDED_BY_IMAGE": "y"}, "log_opts": {"max-size": "10m"}}
    assert configured_changes(prior, {"image": "x", "env": {"A": "1"}}) == []
    assert configured_changes(prior, {"image": "z", "env": {"A": "2"}}) == [("image",), ("env", "A")]
    assert configured_changes(prior, {"user": None}) == []


def test_lists_compare_whole_and_numbers_by_value():
    assert configured_changes({"cmd": ["a", "b"]}, {"cmd": ["a", "b"]}) == []
    assert configured_changes({"cmd": ["a", "b"]}, {"cmd": ["a"]}) == [("cmd",)]
    blocks = {"container": [{"image": "x", "resources": {"memory": 1}}]}
    assert configured_changes(blocks, {"container": [{"image": "x", "resources": {"memory": 2}}]}) == \
        [("container", 0, "resources", "memory")]
    assert configured_changes({"cpu": 1}, {"cpu": 1.0}) == []
    assert configured_changes({"on": True}, {"on": 1}) == [("on",)]


def test_unknown_config_is_a_change():
    assert configured_changes({"ip": "1.2.3.4"}, {"ip": UNKNOWN}) == [("ip",)]


def test_paths():
    v = {"a": {"b": [1, {"c": 2}]}}
    assert get_path(v, ("a", "b", 1, "c")) == 2 and get_path(v, ("x", "y")) is None
    assert set_path({"a": {"x": 1}}, ("a", "b"), 2) == {"a": {"x": 1, "b": 2}}
    assert merge_configured({"id": "c1", "image": "x"}, {"image": "y"}) == {"id": "c1", "image": "y"}
