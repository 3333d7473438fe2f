"""Maintenance tasks."""

from __future__ import annotations

from dataclasses import asdict

from leadgen.db import session_scope
from leadgen.maintenance import sweep_leases
from leadgen.tasks import task


@task("leadgen.maintenance.sweep_leases")
def sweep_leases_task() -> dict[str, int]:
    with session_scope() as session:
        return asdict(sweep_leases(session))
