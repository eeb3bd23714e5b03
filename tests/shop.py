"""The shop example (examples/shop) copied for a test: on free ports, optionally under another circuit name."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from baton_cli import ROOT, port_free

SHOP_PORTS = (8001, 8002, 8003, 8004)


def free_base() -> int:
    """A base port whose four node ports and their derived management ports (+10000) are all free, all below
    the kernel's ephemeral range (32768 and up), so no client socket takes one between now and the deploy."""
    for _ in range(200):
        base = random.randrange(20000, 22700)
        if all(port_free(base + i) and port_free(base + i + 10000) for i in range(4)):
            return base
    raise AssertionError("no four free ports in a row between 20000 and 22700 (and +10000)")


def copy_shop(target: Path, *, name: str | None = None) -> dict[int, int]:
    """Copy examples/shop to ``target`` with its ports moved to free ones; returns {example port: new port}."""
    shutil.copytree(ROOT / "examples" / "shop", target, ignore=shutil.ignore_patterns("__pycache__", ".baton"))
    base = free_base()
    moved = {port: base + i for i, port in enumerate(SHOP_PORTS)}
    config = target / "baton.yaml"
    text = config.read_text()
    for old, new in moved.items():
        text = text.replace(f"port: {old}", f"port: {new}")
    if name:
        text = text.replace("name: shop", f"name: {name}", 1)
    config.write_text(text)
    return moved
