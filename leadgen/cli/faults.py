"""`leadgen faults run [--long]`: the end-to-end fault suite (see `leadgen.faultrun`)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click


@click.group()
def faults() -> None:
    """Fault injection against the sandbox (real worker and beat, PostgreSQL, Redis)."""


@faults.command("run")
@click.option("--long", "long_", is_flag=True, help="More SIGKILLs, Redis and PostgreSQL restarts.")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Work directory (logs, sandbox mailbox); default: a temporary one.")
@click.option("--database", default=None,
              help="A PostgreSQL URL to use; default: a fresh database, dropped afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def run(long_: bool, directory: Path | None, database: str | None, as_json: bool) -> None:
    """Run the pipeline under faults and check its invariants (exit 1 if one fails)."""
    from leadgen.faultrun import render_table, run_faults

    directory = directory or Path(tempfile.mkdtemp(prefix="leadgen-faults-"))
    echo = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    report = run_faults(directory, long=long_, database=database, on_event=echo)
    click.echo(report.as_json() if as_json else render_table(report))
    if not as_json:
        click.echo(f"\nLogs and the sandbox mailbox: {directory}", err=True)
    sys.exit(0 if report.ok else 1)


COMMANDS = [faults]
