"""Reading baton.yaml is bounded and total: any text gives a config or one BatonError, quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import baton.project
from baton.config import CircuitConfig, YamlDocument
from baton.config.bounded import config_limits, load_json, load_yaml
from baton.errors import BatonError, ConfigError
from baton.project import Project, fast_load

LAUGHS = "\n".join(
    ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
) + "\nname: *l8\n"


def _project(tmp_path: Path, text: str) -> Project:
    (tmp_path / "baton.yaml").write_text(text, encoding="utf-8")
    baton.project._CACHE.clear()
    return Project(tmp_path)


def test_billion_laughs_is_refused_by_both_parsers_in_milliseconds(tmp_path: Path) -> None:
    project = _project(tmp_path, LAUGHS)
    started = time.monotonic()
    assert fast_load(project.config_path) is None
    with pytest.raises(ConfigError) as caught:
        project.load()
    assert time.monotonic() - started < 1
    assert str(caught.value) == (
        "baton.yaml line 9: expected YAML aliases to repeat at most 10,000 values, found the anchor &l8 "
        "defined there repeated into 926,177,086; write the values out or use far fewer aliases."
    )


def test_a_few_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = (
        "name: merged\nx-defaults: &defaults {proxy_mode: http, role: service}\n"
        "nodes:\n  - {<<: *defaults, name: a, port: 9101}\n  - {<<: *defaults, name: b, port: 9102}\n"
    )
    config = _project(tmp_path, text).load()
    assert [n.name for n in config.nodes] == ["a", "b"]
    assert YamlDocument.parse(text, path=tmp_path / "baton.yaml", label="baton.yaml").data["name"] == "merged"


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^baton.yaml line 1: .*&a used inside itself; remove the recursive alias"):
        _project(tmp_path, "services: &a [*a]\n").load()


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    for text in ("name: " + "[" * 5000 + "]" * 5000 + "\n",
                 "name: x\nx:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(400)) + " " * 401 + "v: 1\n"):
        with pytest.raises(ConfigError, match="nested at most 64 levels deep"):
            _project(tmp_path, text).load()
    with pytest.raises(ConfigError, match="nested at most 64 levels deep"):
        load_json("[" * 100_000 + "]" * 100_000, config_limits(), "x.json")


def test_the_size_cap_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path, "name: padded\n" + "# padding\n" * 200)
    assert project.load().name == "padded"
    monkeypatch.setenv("BATON_MAX_CONFIG_BYTES", "1000")
    baton.project._CACHE.clear()
    with pytest.raises(ConfigError) as caught:
        project.load()
    assert str(caught.value) == (
        "baton.yaml: expected at most 1000 bytes, found 2 KiB; shrink the file or raise BATON_MAX_CONFIG_BYTES "
        "(bytes) if it really must be this large."
    )
    monkeypatch.setenv("BATON_MAX_CONFIG_BYTES", "lots")
    with pytest.raises(ConfigError, match="BATON_MAX_CONFIG_BYTES must be a number of bytes, found 'lots'"):
        load_yaml("a: 1", config_limits(), "baton.yaml")


def test_a_plain_text_manifest_is_told_what_a_manifest_is(tmp_path: Path) -> None:
    from baton.services import load_service

    (tmp_path / "baton-service.yaml").write_text("a service that does things\n")
    with pytest.raises(ConfigError) as caught:
        load_service(tmp_path, label="svc")
    assert str(caught.value) == (
        "svc line 1: expected a service manifest mapping (name, port, dependencies, ...), found plain text; fix svc."
    )


# -- fuzzing -------------------------------------------------------------------------------------------------

TOKENS = list("abnode:-[]{}&*!|>'\"#, ?%@`0189.\n\t<=~\\") + ["  ", "name", "nodes", "edges", "port", "&a", "*a",
                                                               "<<", "\n  - "]
YAMLISH = st.lists(st.sampled_from(TOKENS), max_size=80).map("".join)
FIELDS = ["name", "version", "nodes", "edges", "routing", "security", "services", "port", "role", "proxy_mode",
          "source", "target", "host", "contract", "deploy", "taint", "arbiter", "ledger", "observability"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-70000, 70000), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["api", "http", "tcp", "ingress", "9001", "1", "2"]))
STRUCTURES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=25,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load_total(tmp_path: Path, text: str) -> None:
    started = time.monotonic()
    try:
        assert isinstance(_project(tmp_path, text).load(), CircuitConfig)
    except BatonError as exc:
        assert str(exc) and "\n" not in str(exc).strip(), str(exc)
    assert time.monotonic() - started < 5


@FUZZ
@given(text=YAMLISH)
def test_fuzz_yamlish_text_gives_a_config_or_a_baton_error(tmp_path: Path, text: str) -> None:
    _load_total(tmp_path, text)


@FUZZ
@given(data=STRUCTURES, style=st.sampled_from([None, True, False]))
def test_fuzz_structures_dumped_to_yaml_give_a_config_or_a_baton_error(tmp_path: Path, data, style) -> None:
    _load_total(tmp_path, yaml.safe_dump(data, default_flow_style=style, allow_unicode=True))
