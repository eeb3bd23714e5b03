"""A Baton project on disk: ``baton.yaml``, the ``.baton/`` state directory, and
the lock that serializes commands on one project."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from baton.errors import BatonError, ProjectError

if TYPE_CHECKING:  # the config models cost ~0.1 s to import: warm commands through the conductor skip them
    from baton.config import CircuitConfig, YamlDocument

CONFIG_FILENAME = "baton.yaml"

__all__ = ["Project", "STATE_DIRNAME", "LOCK_TIMEOUT_S", "fast_load", "enter_in_thread"]

_CACHE: dict[tuple[str, int, int], "CircuitConfig"] = {}


def fast_load(path: Path) -> "CircuitConfig | None":
    """Parse (libyaml, bounded: size, nesting, aliases) and validate; None when anything is wrong (the
    slow path explains it)."""
    from pydantic import ValidationError

    from baton.config import CircuitConfig
    from baton.config.bounded import config_limits, load_yaml, read_text

    try:
        limits = config_limits()
        data = load_yaml(read_text(path, limits, CONFIG_FILENAME), limits, CONFIG_FILENAME)
        return CircuitConfig.model_validate(data if data is not None else {})
    except (BatonError, ValidationError, ValueError, TypeError, RecursionError):
        return None


STATE_DIRNAME = ".baton"
LOCK_TIMEOUT_S = float(os.environ.get("BATON_LOCK_TIMEOUT_S", "30"))


@dataclass(frozen=True)
class Project:
    """Where a circuit lives: its directory, config file and state directory."""

    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The project whose ``baton.yaml`` is in ``start`` or its nearest parent."""
        here = Path(start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / CONFIG_FILENAME).is_file():
                return cls(candidate)
        raise ProjectError(
            f"no {CONFIG_FILENAME} found in {here} or its parents; run `baton init` there or pass --dir."
        )

    @classmethod
    def at(cls, root: Path) -> Project:
        """The project rooted exactly at ``root`` (which must hold baton.yaml)."""
        root = Path(root).resolve()
        if not (root / CONFIG_FILENAME).is_file():
            raise ProjectError(f"no {CONFIG_FILENAME} in {root}; run `baton init {root}` first.")
        return cls(root)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILENAME

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIRNAME

    def label(self, path: Path) -> str:
        """A path as the user should see it: relative to the project when inside it."""
        with contextlib.suppress(ValueError):
            return str(Path(path).resolve().relative_to(self.root))
        return str(path)

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the project root."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    # -- reading -------------------------------------------------------------

    def document(self) -> "YamlDocument":
        from baton.config import YamlDocument

        return YamlDocument.load(self.config_path, label=CONFIG_FILENAME)

    def load(self) -> "CircuitConfig":
        """The validated config; parsed fast (libyaml) and cached while the file is unchanged.

        Any problem is re-diagnosed through the round-trip parser, whose error names the line.
        """
        try:
            stat = self.config_path.stat()
        except FileNotFoundError:
            raise ProjectError(f"{self.config_path} disappeared; run `baton init` again.") from None
        key = (str(self.config_path), stat.st_mtime_ns, stat.st_size)
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        config = fast_load(self.config_path)
        if config is None:
            from baton.config import CircuitConfig, validate_document

            config = validate_document(self.document(), CircuitConfig, label=CONFIG_FILENAME)
        _CACHE.clear()
        _CACHE[key] = config
        return config

    # -- writing -------------------------------------------------------------

    @property
    def run_tag(self) -> str:
        """Tags this project's flow runs with its path digest, so projects sharing one Prefect server stay apart."""
        import hashlib

        return "project:" + hashlib.sha256(str(self.root).encode()).hexdigest()[:12]

    @contextlib.contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the project lock: one editing command at a time per project."""
        from baton.locking import held

        self.state_dir.mkdir(exist_ok=True)
        path = self.state_dir / "project.lock"
        with held(path, timeout, "another baton command", label=self.label(path)):
            yield

    @contextlib.contextmanager
    def editing(self) -> Iterator[YamlDocument]:
        """Load baton.yaml under the lock; on a clean exit validate the edit and write it atomically.

        An edit that would leave the file invalid raises and writes nothing.
        """
        from baton.config import CircuitConfig, validate_document

        with self.lock():
            doc = self.document()
            validate_document(doc, CircuitConfig, label=CONFIG_FILENAME)  # refuse to build on a broken file
            yield doc
            validate_document(doc, CircuitConfig, label=CONFIG_FILENAME)
            doc.save()


async def enter_in_thread(lock: contextlib.AbstractContextManager[object]) -> None:
    """Enter a blocking lock (the project lock) from an event loop without blocking it, safe against
    cancellation: a task cancelled while the thread still waits does not leave the lock held, because the
    thread's acquisition, once it happens, is released at once."""
    import asyncio

    entering = asyncio.ensure_future(asyncio.to_thread(lock.__enter__))
    try:
        await asyncio.shield(entering)
    except asyncio.CancelledError:
        def release(done: asyncio.Future[object]) -> None:
            if not done.cancelled() and done.exception() is None:
                lock.__exit__(None, None, None)

        entering.add_done_callback(release)
        raise
