"""The custodian: the conductor's event-driven core that keeps slotted services healthy.

Pure state and decisions (``machine``, ``core``), fed by events (``events``) from probes, timers, CLI
commands and the repair flows it launched; persisted atomically (``store``). The conductor registers the
callbacks that probe and start flows (``baton/cli/custody.py``); nothing here does I/O but the store.
"""

from baton.custodian.core import CustodianCore, RepairOrder
from baton.custodian.events import Command, Event, RepairFinished, ProbeResult, Tick
from baton.custodian.machine import CustodyPolicy, NodeCustody, Status

__all__ = ["CustodianCore", "RepairOrder", "Command", "Event", "RepairFinished", "ProbeResult", "Tick",
           "CustodyPolicy", "NodeCustody", "Status"]
