"""Which addresses a container's processes listen on, read from its ``/proc/net/tcp`` and ``tcp6``: pure
parsing, and the one decision the docker provider needs from it (a service bound to loopback only, which
nothing outside its container can reach)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["listeners", "loopback_only"]

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_address)
    # the kernel prints each 32-bit word in host (little-endian) order
    swapped = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(swapped)


def listeners(tables: Iterable[str]) -> list[tuple[str, int]]:
    """(address, port) of every listening socket in the text of ``/proc/net/tcp`` and ``/proc/net/tcp6``."""
    found = []
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != _LISTEN or ":" not in fields[1]:
                continue
            address, port = fields[1].rsplit(":", 1)
            try:
                found.append((str(_address(address)), int(port, 16)))
            except ValueError:
                continue
    return found


def loopback_only(found: Iterable[tuple[str, int]], port: int) -> str | None:
    """The loopback address ``port`` is bound to when nothing else listens on it (so only the container itself
    reaches it); None when it listens on a reachable address or not at all."""
    addresses = [ipaddress.ip_address(a) for a, p in found if p == port]
    mapped = [a.ipv4_mapped or a if isinstance(a, ipaddress.IPv6Address) else a for a in addresses]
    if mapped and all(a.is_loopback for a in mapped):
        return str(addresses[0])
    return None
