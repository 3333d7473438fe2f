"""`leadgen run --once`."""

from __future__ import annotations

import json

import click

from leadgen.config import get_settings
from leadgen.logs import configure_logging


@click.command("run")
@click.option("--once", is_flag=True, required=True, help="One pass over every stage.")
@click.option("--sync/--no-sync", default=None,
              help="Read the sheet first (default: when GOOGLE_SHEET_ID is set).")
@click.option("--batch-tag", default=None, help="Only sheet rows with this batch tag.")
def run(once: bool, sync: bool | None, batch_tag: str | None) -> None:
    """Run every stage's dispatcher once (in process without a broker, else enqueue)."""
    from leadgen.pipeline import run_once

    settings = get_settings()
    configure_logging()
    do_sync = bool(settings.google_sheet_id) if sync is None else sync
    outcome = run_once(settings, sync=do_sync, batch_tag=batch_tag)
    click.echo(json.dumps(outcome, default=str, ensure_ascii=False, indent=2))


COMMANDS = [run]
