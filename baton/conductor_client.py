"""The CLI's side of the conductor: find it from ``.baton/conductor.json`` and
run an action through it, streaming progress lines and the result back.

Standard library only (``http.client``), so a warm command costs no import of
aiohttp or Prefect.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.errors import BatonError, UsageError
from baton.processes import ProcessRecord, is_running

__all__ = ["ConductorClient", "CONDUCTOR_FILE", "code_stamp"]

CONDUCTOR_FILE = "conductor.json"
_CODE_PACKAGES = ("baton", "flows", "tasks", "providers")


def code_stamp() -> str:
    """Identifies the code a conductor runs: newest module mtime of the control-plane packages.

    A conductor started before an upgrade (or an edit) runs stale flows; the CLI
    compares stamps and restarts it.
    """
    import importlib.util

    newest = 0.0
    for package in _CODE_PACKAGES:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            for path in Path(location).rglob("*.py"):
                try:
                    newest = max(newest, path.stat().st_mtime)
                except OSError:
                    continue
    return f"{newest:.6f}"


@dataclass(frozen=True)
class ConductorClient:
    host: str
    port: int
    token: str
    process: ProcessRecord | None = None
    code: str = ""

    @property
    def stale(self) -> bool:
        return self.code != code_stamp()

    @classmethod
    def discover(cls, state_dir: Path) -> ConductorClient | None:
        """The project's running conductor, or None (``BATON_NO_CONDUCTOR`` is for the caller to honour)."""
        try:
            data = json.loads((Path(state_dir) / CONDUCTOR_FILE).read_text())
            record = ProcessRecord.from_json(data["process"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not is_running(record):
            return None
        return cls(data["host"], int(data["port"]), data["token"], record, str(data.get("code", "")))

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            conn = self._connection(timeout)
            conn.request("GET", "/health", headers=self._headers())
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def health(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """What the conductor says of itself (pid, custodian, Prefect API), or None when it does not answer."""
        try:
            conn = self._connection(timeout)
            conn.request("GET", "/health", headers=self._headers())
            response = conn.getresponse()
            data = json.loads(response.read() or b"null") if response.status == 200 else None
            conn.close()
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def run(self, action: str, params: dict[str, Any], *, actor: str,
            progress: Callable[[str], None] | None = None) -> Any:
        """Run ``action`` in the conductor; progress lines go to ``progress``; errors raise as here."""
        body = json.dumps({"action": action, "params": params, "actor": actor})
        try:
            conn = self._connection(None)
            conn.request("POST", "/run", body=body, headers=self._headers())
            response = conn.getresponse()
        except OSError as exc:
            raise BatonError(f"the conductor at {self.host}:{self.port} does not answer ({exc}); "
                             "run `baton serve` again or `baton down --all`.") from exc
        if response.status != 200:
            raise BatonError(f"the conductor refused the run (HTTP {response.status}: {response.read()[:200]!r}).")
        result: Any = None
        failed: dict[str, Any] | None = None
        for raw in response:
            line = json.loads(raw)
            if "progress" in line and progress is not None:
                progress(line["progress"])
            elif "result" in line:
                result = line["result"]
            elif "error" in line:
                failed = line
        conn.close()
        if failed is None and result is None:
            raise BatonError(f"the conductor stopped before the {action} run finished; `baton history` shows how "
                             "far it got.")
        if failed is not None:
            error_cls = UsageError if failed.get("exit_code") == 2 else BatonError
            raise error_cls(failed["error"])
        return result

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        try:
            conn = self._connection(10)
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=self._headers())
            response = conn.getresponse()
            data = json.loads(response.read() or b"null")
            conn.close()
        except (OSError, ValueError) as exc:
            raise BatonError(f"the conductor at {self.host}:{self.port} does not answer ({exc}); "
                             "run `baton serve` again or `baton down --all`.") from exc
        if response.status == 400:
            raise UsageError(data.get("error", "the conductor refused the request"))
        if response.status != 200:
            raise BatonError(data.get("error") if isinstance(data, dict) and data.get("error")
                             else f"the conductor answered HTTP {response.status} to {path}.")
        return data

    def custody(self) -> dict[str, Any]:
        """The custodian's state: every watched node, the provider gate, the policy."""
        return self._json("GET", "/custody")

    def collect_taint(self) -> int:
        """Have the conductor run one taint collector pass now; returns how many violations it found."""
        return int(self._json("POST", "/taint/collect").get("found", 0))

    def heal(self, kind: str, node: str) -> dict[str, Any]:
        return self._json("POST", "/custody/command", {"kind": kind, "node": node})

    def watch(self) -> Any:
        """The custodian's decisions as they happen: a snapshot first, then one dict per decision."""
        try:
            conn = self._connection(None)
            conn.request("GET", "/custody/watch", headers=self._headers())
            response = conn.getresponse()
        except OSError as exc:
            raise BatonError(f"the conductor at {self.host}:{self.port} does not answer ({exc}).") from exc
        if response.status != 200:
            data = json.loads(response.read() or b"{}")
            raise BatonError(data.get("error") or f"the conductor answered HTTP {response.status} to /custody/watch.")
        try:
            for raw in response:
                yield json.loads(raw)
        finally:
            conn.close()

    def shutdown(self) -> None:
        try:
            conn = self._connection(5)
            conn.request("POST", "/shutdown", headers=self._headers())
            conn.getresponse().read()
            conn.close()
        except OSError:
            pass
