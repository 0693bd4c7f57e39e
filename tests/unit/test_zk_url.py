"""Pure parts of deploykit.clients.zk: zk:// URL parsing and Curator latch ordering."""

from __future__ import annotations

import pytest

from deploykit.clients.zk import ZkUrl, latch_path, leader_from_children, parse_zk_url
from deploykit.errors import ValidationError


def test_parse_zk_url_multi_host():
    url = parse_zk_url("zk://zk1:2181,zk2:2181,zk3/marathon")
    assert url == ZkUrl(hosts="zk1:2181,zk2:2181,zk3", path="/marathon")
    assert str(url) == "zk://zk1:2181,zk2:2181,zk3/marathon"


def test_parse_zk_url_nested_path_trailing_slash():
    assert parse_zk_url("zk://127.0.0.1:2181/a/b/").path == "/a/b"


@pytest.mark.parametrize(
    "bad",
    ["http://zk1:2181/marathon", "zk:///marathon", "zk://zk1:2181", "zk://zk1:abc/marathon", "zk://:2181/m"],
)
def test_parse_zk_url_rejects(bad):
    with pytest.raises(ValidationError) as info:
        parse_zk_url(bad, source="chef_attrs/prod.json")
    problem = info.value.problems[0]
    assert problem.file == "chef_attrs/prod.json"
    assert problem.path == "marathon.zk"
    assert problem.hint


def test_latch_path():
    assert latch_path("/marathon") == "/marathon/leader-curator"
    assert latch_path("/marathon/") == "/marathon/leader-curator"


def test_leader_is_lowest_sequence_not_lowest_name():
    children = [
        "_c_ffff-latch-0000000003",
        "_c_0000-latch-0000000011",
        "_c_aaaa-latch-0000000002",
        "not-a-latch-node",
    ]
    assert leader_from_children(children) == "_c_aaaa-latch-0000000002"


def test_leader_none_without_candidates():
    assert leader_from_children([]) is None
    assert leader_from_children(["foo", "latch-x"]) is None
