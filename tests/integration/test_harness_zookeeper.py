"""The ZooKeeper fixture starts a real server that kazoo can use."""

from kazoo.client import KazooClient


def test_kazoo_round_trip(zookeeper):
    zk = KazooClient(hosts=zookeeper.hosts, timeout=5)
    zk.start(timeout=10)
    try:
        zk.ensure_path("/deploykit/test")
        zk.set("/deploykit/test", b"hello")
        assert zk.get("/deploykit/test")[0] == b"hello"
    finally:
        zk.stop()
        zk.close()
