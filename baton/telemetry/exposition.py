"""One Prometheus text exposition of a whole circuit, merged from each adapter's ``/metrics/prometheus``: pure.

Each node's text is parsed with prometheus_client's parser; families of the same name are merged (each sample
keeps its ``node`` label, given one when it has none) and rendered once, with one ``# HELP`` and one ``# TYPE``
each, by prometheus_client's own writer (text format 0.0.4: a counter ``x`` is written as ``x_total``). A
counter whose ``# TYPE`` line names it without ``_total`` while its samples carry the suffix (which the parser
reads as an empty counter beside an untyped family) is put back together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["CONTENT_TYPE", "Merged", "merge_expositions"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created"), "gaugehistogram": ("_gsum", "_gcount", "_bucket")}
_UNTYPED = ("unknown", "untyped")


@dataclass
class Merged:
    """The merged exposition (``text``) and what could not be merged (``notes``, one sentence each)."""

    text: str
    families: int = 0
    samples: int = 0
    notes: list[str] = field(default_factory=list)


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _reunite(families: list[Metric]) -> list[Metric]:
    """Fold untyped families named like a declared family plus its suffix (``x_total`` beside counter ``x``) into
    that family; drop families left without samples."""
    by_name = {f.name: f for f in families}
    kept = []
    for family in families:
        if family.type in _UNTYPED and not family.documentation:
            owner = next((by_name[family.name.removesuffix(s)] for s in (
                "_total", "_created", "_bucket", "_sum", "_count") if family.name.endswith(s)
                and family.name.removesuffix(s) in by_name
                and by_name[family.name.removesuffix(s)].type not in _UNTYPED), None)
            if owner is not None and family.name.removeprefix(owner.name) in _SUFFIXES.get(owner.type, ()):
                owner.samples.extend(family.samples)
                continue
        kept.append(family)
    return [f for f in kept if f.samples]


def _parse(node: str, text: str) -> list[Metric]:
    families = list(text_string_to_metric_families(text))
    for family in families:
        family.samples = [s if "node" in s.labels else s._replace(labels={**s.labels, "node": node})
                          for s in family.samples]
    return _reunite(families)


def merge_expositions(texts: Mapping[str, str]) -> Merged:
    """``texts``: node -> its exposition. Families merged by name in the order first seen; a family whose type
    differs from the first of its name is left out, and so is a node whose text does not parse (each with a
    note)."""
    merged: dict[str, Metric] = {}
    seen: dict[str, set[tuple[str, tuple[tuple[str, str], ...]]]] = {}
    notes: list[str] = []
    for node, text in texts.items():
        try:
            families = _parse(node, text)
        except (ValueError, TypeError, IndexError) as exc:
            notes.append(f"the exposition of {node} does not parse ({exc}); it is left out.")
            continue
        for family in families:
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                seen[family.name] = set()
            elif target.type != family.type:
                notes.append(f"{node} declares {family.name} a {family.type}, another node a {target.type}; its "
                             "samples of it are left out.")
                continue
            keys = seen[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in keys:
                    keys.add(key)
                    target.samples.append(Sample(sample.name, dict(sample.labels), sample.value, sample.timestamp,
                                                 sample.exemplar))
    families = [f for f in merged.values() if f.samples]
    text = generate_latest(_Families(families)).decode("utf-8")  # type: ignore[arg-type]
    return Merged(text, len(families), sum(len(f.samples) for f in families), notes)
