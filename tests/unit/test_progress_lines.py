"""Progress of long steps: lines a step marks ``baton_progress`` reach the command's sink as they happen, next to
the one line per finished step; without a terminal they are plain ``  · `` lines on stderr."""

from __future__ import annotations

import logging

from baton.cli.flowrun import ProgressRouter, stderr_progress


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("prefect.task_runs", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_marked_lines_and_finished_steps_reach_the_sink() -> None:
    router, lines = ProgressRouter(), []
    with router.routing_to(lines.append):
        router.emit(_record("[ 12.5 s] debootstrap bookworm", task_run_name="ensure-adapter-image-0",
                            baton_progress=True))
        router.emit(_record("an ordinary log line", task_run_name="ensure-adapter-image-0"))
        router.emit(_record("Finished in state Completed()", task_run_name="ensure-adapter-image-0"))
    assert lines == ["ensure-adapter-image: [ 12.5 s] debootstrap bookworm", "ensure-adapter-image: completed"]


def test_without_a_terminal_lines_are_plain(capsys) -> None:
    with stderr_progress(True) as show:
        show("build-service-image: [  3.0 s] users: python (app.py)")
    assert capsys.readouterr().err == "  · build-service-image: [  3.0 s] users: python (app.py)\n"
    with stderr_progress(False) as nothing:
        assert nothing is None
