"""`zk://h1:2181,h2:2181/marathon` (the form Marathon's --zk takes): parsed once, for every part that reads one.

Pure (no kazoo), so the devcluster's flags and `local up` checks can use it without loading a ZooKeeper client.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from deploykit.errors import Problem, ValidationError


@dataclass(frozen=True)
class ZkUrl:
    """A parsed `zk://h1:2181,h2:2181/marathon`: kazoo's hosts string and the znode path."""

    hosts: str
    path: str

    def __str__(self) -> str:
        return f"zk://{self.hosts}{self.path}"


def parse_zk_url(
    url: str, *, source: str | None = None, key: str = "marathon.zk", default_path: str | None = None
) -> ZkUrl:
    """Parse `zk://host[:port][,host[:port]...]/path`; every problem at once.

    Raises ValidationError naming `source`/`key` so a bad environment file says where the bad value is.
    `default_path` is used when the URL has none (the devcluster's flags default to /marathon, as Marathon does);
    without it a missing path is an error, since an environment file should say which Marathon it means.
    """
    problems: list[Problem] = []
    parts = urlsplit(url.strip())
    hosts = parts.netloc
    path = parts.path.rstrip("/") or (default_path or "")
    if parts.scheme != "zk":
        problems.append(Problem(source, key, f"{url!r} is not a zk:// URL", "e.g. zk://zk1:2181,zk2:2181/marathon"))
    elif not hosts:
        problems.append(Problem(source, key, f"{url!r} names no ZooKeeper host", "e.g. zk://zk1:2181/marathon"))
    else:
        for host in hosts.split(","):
            name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
            if not name or (port and not port.isdigit()):
                problems.append(Problem(source, key, f"bad ZooKeeper host {host!r} in {url!r}", "use host:port"))
    if not path:
        problems.append(Problem(source, key, f"{url!r} has no znode path", "Marathon's default is /marathon"))
    if problems:
        raise ValidationError(problems)
    return ZkUrl(hosts=hosts, path=path)
