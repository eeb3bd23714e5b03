"""Which proxy modes a node may name: built-in ones, and those a ``baton.protocols`` plugin adds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from baton.config import BUILTIN_MODES, NodeConfig
from baton.modes import check_mode, offered_modes


def test_every_built_in_mode_is_offered_and_the_adapter_agrees() -> None:
    from baton_adapter import protocols
    from baton_adapter.config import MODES

    assert set(BUILTIN_MODES) == set(MODES) <= set(protocols.registered())
    assert {mode: offered_modes()[mode] for mode in BUILTIN_MODES} == {mode: "built in" for mode in BUILTIN_MODES}


def test_a_plugin_mode_loads_and_an_unknown_one_is_refused_in_one_sentence() -> None:
    node = NodeConfig(name="loud", port=9001, proxy_mode="shout")
    assert node.proxy_mode == "shout"  # baton.yaml may name it: whether it can be served is checked at start
    assert check_mode("loud", "shout", {"http": "built in", "shout": "baton-shout"}) is None
    refused = check_mode("loud", "shout", {"http": "built in", "tcp": "built in"})
    assert refused is not None and refused.count(". ") == 0 and refused.endswith("proxy_mode.")
    assert "'shout'" in refused and "http, tcp" in refused


@pytest.mark.parametrize("bad", ["Shout", "sh out", "1mode", "", "shout-loud", "x" * 3 + "\u00e9"])
def test_a_mode_name_the_adapter_would_refuse_is_refused_in_baton_yaml(bad: str) -> None:
    with pytest.raises(ValidationError):
        NodeConfig(name="loud", port=9001, proxy_mode=bad)
