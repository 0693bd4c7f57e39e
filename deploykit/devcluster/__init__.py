"""The devcluster: a local stand-in for Marathon (and Consul) that really runs apps.

Marathon and Consul cannot be installed on our machines, so the quick start and every
end-to-end test talk to this server instead. It speaks the Marathon 1.10 REST API and
event stream, runs tasks as local processes with real health checks and real
upgrade-strategy deployments, and registers as Marathon leader in ZooKeeper. See
docs/devcluster.md for what is faithful and what is not.
"""
