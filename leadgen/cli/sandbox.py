"""`leadgen sandbox up`: every emulator in the foreground, its settings printed for the shell."""

from __future__ import annotations

import json
import shlex
import sys
import threading
from pathlib import Path

import click


@click.group()
def sandbox() -> None:
    """Local emulators of Yandex, Google Sheets, OpenAI, SMTP, DNS and the web."""


@sandbox.command("up")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("var/sandbox"), show_default=True, help="Keys, CA and mailbox go here.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the synthetic world.")
@click.option("--scale", type=int, default=1, show_default=True, help="World size multiplier.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of exports.")
@click.option("--sheet-csv", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Seed the sheet from this CSV (default: the sample sheet).")
@click.option("--faults", "faults_file", type=click.Path(dir_okay=False, exists=True,
                                                         path_type=Path),
              default=None, help="A faults JSON file (see leadgen.sandbox.faults).")
@click.option("--operation-delay", type=float, default=0.0, show_default=True,
              help="Seconds before a deferred search is done.")
def sandbox_up(directory: Path, seed: int, scale: int, as_json: bool, sheet_csv: Path | None,
               faults_file: Path | None, operation_delay: float) -> None:
    """Start the sandbox and print `export NAME=VALUE` lines; runs until Ctrl-C."""
    from leadgen.sandbox.faults import Faults
    from leadgen.sandbox.runner import Sandbox

    faults = Faults.from_json(faults_file) if faults_file else None
    box = Sandbox(directory.resolve(), seed=seed, scale=scale, faults=faults,
                  operation_delay_s=operation_delay, sheet_csv=sheet_csv)
    try:
        with box:
            env = box.env()
            if as_json:
                click.echo(json.dumps({"env": env, "endpoints": box.endpoints()},
                                      ensure_ascii=False))
            else:
                for name, value in env.items():
                    click.echo(f"export {name}={shlex.quote(value)}")
                click.echo("# sandbox running; press Ctrl-C to stop", err=True)
            sys.stdout.flush()
            threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("sandbox stopped", err=True)


COMMANDS = [sandbox]
