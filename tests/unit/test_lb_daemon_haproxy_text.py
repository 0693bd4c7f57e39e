"""Parsing HAProxy 2.6 CLI replies (texts captured from a real 2.6.12 master/stats socket)."""

from __future__ import annotations

import pytest

from deploykit.errors import RemoteError
from deploykit.lb.haproxy import (
    _batches,
    config_servers,
    filter_server_state,
    is_error_reply,
    parse_show_proc,
    split_replies,
)

SHOW_PROC = (
    "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
    "8504            master          3 [failed: 1]   0d00h01m22s     2.6.12-1+deb12u4\n"
    "# workers\n"
    "10297           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n"
    "# old workers\n"
    "8645            worker          2               0d00h01m17s     2.6.12-1+deb12u4\n"
    "# programs\n\n"
)


def test_parse_show_proc():
    table = parse_show_proc(SHOW_PROC)
    assert table.master.pid == 8504
    assert table.master.reloads == 3
    assert table.master.failed == 1
    assert [w.pid for w in table.workers] == [10297]
    assert [(w.pid, w.reloads) for w in table.old_workers] == [(8645, 2)]
    assert table.workers[0].version == "2.6.12-1+deb12u4"


def test_parse_show_proc_without_master_is_an_error():
    with pytest.raises(RemoteError):
        parse_show_proc("Unknown command\n")


def test_split_batched_replies():
    reply = (
        "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n"
        "IP changed from '0.0.0.0' to '1.2.3.4', port changed from '+0' to '1' by 'stats socket command'\n\n"
        "\n"
        "No such backend.\n\n"
    )
    replies = split_replies(reply)
    assert len(replies) == 4
    assert [is_error_reply(r) for r in replies] == [True, False, False, True]


def test_batches_respect_size_and_refuse_injection():
    cmds = [f"set server be/s{i} state ready" for i in range(1000)]
    batches = list(_batches(cmds))
    assert sum(len(b) for b in batches) == 1000
    assert all(len("; ".join(b)) <= 8000 for b in batches)
    with pytest.raises(ValueError):
        list(_batches(["set server be/s1 state ready; shutdown sessions server be/s2"]))


HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight"
    " srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state"
    " srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port"
    " srv_check_addr srv_agent_addr srv_agent_port"
)
STATE = "1\n" + HEADER + """
3 app 1 s1 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 9999 - 0 0 - - 0
3 app 2 s2 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 9998 - 0 0 - - 0
3 app 3 s3 10.0.0.3 2 4 1 1 0 1 0 0 8 0 0 0 - 31000 - 0 0 - - 0
3 app 4 s4 0.0.0.0 0 5 1 1 0 1 0 0 8 0 0 0 - 0 - 0 0 - - 0
4 gone 1 s1 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 9999 - 0 0 - - 0
"""

CONFIG = """global
    master-worker
backend app
    balance roundrobin
    server s1 127.0.0.1:9999 check
    server s2 127.0.0.1:7777 check
    server s3 10.0.0.3:31000 check disabled
    server-template s 4-8 0.0.0.0:0 disabled  # spare slots
"""


def test_config_servers_reads_servers_and_templates():
    servers = config_servers(CONFIG)
    assert servers[("app", "s1")] == ("127.0.0.1", 9999, True)
    assert servers[("app", "s3")] == ("10.0.0.3", 31000, False)
    assert servers[("app", "s8")] == ("0.0.0.0", 0, False)
    assert ("app", "s9") not in servers


def test_filter_server_state_keeps_only_agreeing_enabled_servers():
    kept = filter_server_state(STATE, CONFIG).splitlines()
    assert kept[0] == "1" and kept[1].startswith("# be_id")
    names = [(ln.split()[1], ln.split()[3]) for ln in kept[2:]]
    assert names == [("app", "s1")]  # s2 moved port, s3 disabled, s4 spare, gone/s1 removed
