"""The fault suite: real `celery worker` + `celery beat` on PostgreSQL and a private Redis,
against the sandbox with faults on; SIGKILLs, a Redis restart and a PostgreSQL backend purge
mid-run. Every invariant of `leadgen.faultrun` must hold."""

from __future__ import annotations

import pytest

from leadgen.faultrun import render_table, run_faults

pytestmark = pytest.mark.e2e


def _assert_report(report) -> None:  # noqa: ANN001
    table = render_table(report)
    failed = [inv for inv in report.invariants if not inv.ok]
    assert not failed, table + "\n\n" + "\n".join(report.events)
    names = {inv.name for inv in report.invariants}
    assert len(names) >= 9
    faults = report.faults
    # the faults really fired
    assert faults["process:worker_pool_sigkill"] >= 1 and faults["process:worker_sigkill"] >= 1
    assert faults["process:redis_restart"] >= 1 and faults["process:postgres_restart"] >= 1
    assert faults["smtp:auth_failure"] >= 1 and faults["smtp:550"] >= 1
    assert faults["operations:expired_before_fetch"] >= 1
    assert sum(v for k, v in faults.items() if k.startswith("openai:")) >= 3
    assert sum(v for k, v in faults.items() if k.startswith(("yandex:", "iam:", "operations:"))
               and k[-3:].isdigit()) >= 1
    assert report.funnel["messages_sent"] > 10


def test_fault_suite_short(tmp_path) -> None:
    _assert_report(run_faults(tmp_path / "faults"))


@pytest.mark.slow
def test_fault_suite_long(tmp_path) -> None:
    report = run_faults(tmp_path / "faults", long=True)
    _assert_report(report)
    assert report.faults["process:worker_sigkill"] >= 3
    assert report.faults["process:redis_restart"] >= 2
    assert report.faults["process:postgres_restart"] >= 2
