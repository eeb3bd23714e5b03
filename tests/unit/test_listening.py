"""Reading a container's listening sockets from /proc/net/tcp{,6}: a loopback-only bind is told apart."""

from __future__ import annotations

from providers.listening import listeners, loopback_only

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
TCP = HEADER + (
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
    "   1: 00000000:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n"
    "   2: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n")
TCP6 = HEADER + (
    "   0: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A 0 0 0 0 0 4 1\n"
    "   1: 00000000000000000000000000000000:1F93 00000000000000000000000000000000:0000 0A 0 0 0 0 0 5 1\n")


def test_listening_sockets_are_parsed_with_their_addresses() -> None:
    assert listeners([TCP, TCP6]) == [("127.0.0.1", 8080), ("0.0.0.0", 8001), ("::1", 8082), ("::", 8083)]


def test_a_loopback_only_port_is_named_and_a_reachable_one_is_not() -> None:
    found = listeners([TCP, TCP6])
    assert loopback_only(found, 8080) == "127.0.0.1"
    assert loopback_only(found, 8082) == "::1"
    assert loopback_only(found, 8001) is None and loopback_only(found, 8083) is None
    assert loopback_only(found, 9999) is None  # not listening at all is another problem
    assert loopback_only(found + [("0.0.0.0", 8080)], 8080) is None
