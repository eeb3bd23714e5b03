"""The protocols lower modules depend on (instead of ``node.py``/``server.py``) match what implements them."""

from __future__ import annotations

import pytest

from _adapter_support import run, running_node
from baton_adapter.exchange import Downstream
from baton_adapter.interfaces import ClientConnection, DataNode, ManagedNode
from baton_adapter.server import HttpProxyProtocol
from baton_adapter.tcp_proxy import TcpProxyProtocol


def _members(protocol: type) -> set[str]:
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return names


@pytest.mark.parametrize("protocol", [DataNode, ManagedNode])
def test_a_node_has_every_member_its_protocols_name(protocol: type) -> None:
    async def main() -> None:
        async with running_node(mock=True) as node:
            missing = {m for m in _members(protocol) if not hasattr(node, m)}
            assert missing == set()

    run(main())


@pytest.mark.parametrize(("protocol", "cls"), [(ClientConnection, HttpProxyProtocol),
                                                (ClientConnection, TcpProxyProtocol),
                                                (Downstream, HttpProxyProtocol)])
def test_client_connections_have_every_member_their_protocols_name(protocol: type, cls: type) -> None:
    async def main() -> None:
        async with running_node(mock=True) as node:
            conn = cls(node)  # not connected: only its attributes are looked at
            missing = {m for m in _members(protocol) if not hasattr(conn, m)}
            assert missing == set()

    run(main())

