"""Notebook runs (nbval: one test per cell) print each notebook's total run time at the end of the session,
and the session fails when a notebook takes longer than three minutes. Each notebook's target is 90 s on a
quiet 2-core CPU (`notebooks/timings.json`, written by `python notebooks/execute.py`); the suite's limit is
looser because other tests share the machine."""

from __future__ import annotations

from collections import defaultdict

import pytest

BUDGET_S = 180.0
TARGET_S = 90.0
_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 (pytest's TerminalReporter)
    if not _seconds:
        return
    terminalreporter.section("notebook run times (target 90 s on a quiet machine; the suite fails over 3 minutes)")
    for path, seconds in sorted(_seconds.items()):
        over = "  <- over the limit" if seconds > BUDGET_S else ("  (over the 90 s target)" if seconds > TARGET_S else "")
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}{over}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == 0 and any(s > BUDGET_S for s in _seconds.values()):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
