"""The span of a flow run (baton/tracing.py) against a real OTLP/HTTP receiver on 127.0.0.1: nothing at all
without ``observability.otlp_endpoint``; with it, one span named after the action with the circuit, node, actor
and the flow run's id and final state, ERROR when the run failed; the state hooks keep the flow's own."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from baton.config import CircuitConfig
from baton.tracing import flow_span, traces_url
from otlp_receiver import OtlpReceiver


@dataclass
class FakeFlow:
    """What ``FlowSpan.hooked`` uses of a Prefect flow: its hook lists and ``with_options``."""

    on_completion_hooks: list[Any] = field(default_factory=list)
    on_failure_hooks: list[Any] = field(default_factory=list)
    on_crashed_hooks: list[Any] = field(default_factory=list)
    on_cancellation_hooks: list[Any] = field(default_factory=list)

    def with_options(self, **hooks: list[Any]) -> FakeFlow:
        return FakeFlow(*(hooks[k] for k in ("on_completion", "on_failure", "on_crashed", "on_cancellation")))


@dataclass
class Run:
    id: uuid.UUID
    name: str


@dataclass
class State:
    name: str


def _config(endpoint: str = "") -> CircuitConfig:
    return CircuitConfig.model_validate({"name": "shop", "version": 2, "observability": {"otlp_endpoint": endpoint},
                                         "nodes": [{"name": "api", "port": 41001}]})


def test_without_an_endpoint_nothing_is_made() -> None:
    flow = FakeFlow()

    async def main() -> None:
        async with flow_span(_config(), "slot", {"node": "api"}, "ada") as span:
            assert span.span is None and span.hooked(flow) is flow

    asyncio.run(main())


def test_a_span_per_run_with_the_run_and_its_state() -> None:
    own = object()
    with OtlpReceiver() as receiver:
        config = _config(receiver.endpoint)

        async def run(action: str, state: str, fail: bool = False) -> FakeFlow:
            async with flow_span(config, action, {"node": "api", "command": "x"}, "ada") as span:
                hooked = span.hooked(FakeFlow(on_completion_hooks=[own]))
                hooks = hooked.on_completion_hooks if state == "Completed" else hooked.on_failure_hooks
                hooks[-1](hooked, Run(uuid.UUID(int=7 if state == "Completed" else 8), f"{action}-run"), State(state))
                if fail:
                    raise RuntimeError("the flow failed")
            return hooked

        hooked = asyncio.run(run("slot", "Completed"))
        assert hooked.on_completion_hooks[0] is own and len(hooked.on_crashed_hooks) == 1
        with pytest.raises(RuntimeError):
            asyncio.run(run("swap", "Failed", fail=True))
        spans = receiver.wait_for(lambda got: len(got) >= 2 and got, "two flow-run spans")
    by_name = {s.name: s for s in spans}
    slot, swap = by_name["baton slot"], by_name["baton swap"]
    assert {k: slot.attributes[k] for k in ("baton.action", "baton.circuit", "baton.node", "baton.actor",
                                            "prefect.flow_run.id", "prefect.flow_run.name",
                                            "prefect.flow_run.state")} == {
        "baton.action": "slot", "baton.circuit": "shop", "baton.node": "api", "baton.actor": "ada",
        "prefect.flow_run.id": str(uuid.UUID(int=7)), "prefect.flow_run.name": "slot-run",
        "prefect.flow_run.state": "Completed"}
    assert slot.status_code != 2 and swap.status_code == 2  # ERROR
    assert swap.attributes["prefect.flow_run.state"] == "Failed"
    assert (slot.resource["service.name"], slot.resource["service.namespace"]) == ("baton", "shop")
    assert slot.trace_id != swap.trace_id and not slot.parent_span_id


def test_the_traces_url() -> None:
    assert traces_url("http://c:4318") == traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("http://c/otlp/v1/traces") == "http://c/otlp/v1/traces"
