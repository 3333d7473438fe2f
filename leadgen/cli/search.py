"""`leadgen sync` (sheet or CSV → queries) and `leadgen queries preview`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError, ProgrammingError

from leadgen.config import get_settings
from leadgen.db import session_scope
from leadgen.search.errors import IntakeError
from leadgen.search.intake import sync as run_sync
from leadgen.search.queries import InputRow, RowError, db_booked, generate_queries, schedule


@click.command("sync")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False), default=None,
              help="Read rows from this CSV file instead of the Google Sheet.")
@click.option("--batch-tag", default=None, help="Only rows with this batch_tag.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def sync_command(csv_file: str | None, batch_tag: str | None, as_json: bool) -> None:
    """Turn sheet (or CSV) rows into scheduled search queries; write results back per row."""
    settings = get_settings()
    try:
        with session_scope() as session:
            summary = run_sync(session, settings, csv_file, batch_tag)
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from None
    except (OperationalError, ProgrammingError) as exc:
        raise click.ClickException(f"database error ({exc.orig}); is the schema up to date? "
                                   "Run `leadgen db upgrade`.") from None
    data = summary.as_dict()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    tz = settings.tz
    click.echo(f"sync {summary.sync_id} from the {summary.source}")
    click.echo(f"  rows: {summary.total_rows} total, {summary.processed_rows} processed, "
               f"{summary.skipped_rows} skipped, {summary.error_rows} with errors")
    click.echo(f"  queries: {summary.generated_queries} generated, {summary.inserted_queries} "
               f"inserted, {summary.duplicate_queries} duplicates")
    if summary.first_scheduled_for and summary.last_scheduled_for:
        click.echo(f"  scheduled: {summary.first_scheduled_for.astimezone(tz):%Y-%m-%d %H:%M} → "
                   f"{summary.last_scheduled_for.astimezone(tz):%Y-%m-%d %H:%M} ({settings.app_timezone})")
    if summary.created_columns:
        click.echo(f"  created sheet columns: {', '.join(summary.created_columns)}")
    for line in data["errors"]:
        click.echo(f"  error: {line}")
    if summary.writeback_error:
        click.echo(f"  write-back failed: {summary.writeback_error}", err=True)


@click.group("queries")
def queries() -> None:
    """Search queries."""


@queries.command("preview")
@click.option("--niche", required=True)
@click.option("--city", default="")
@click.option("--country", default="")
@click.option("--now", "now_text", default=None, help="Pretend it is this ISO time (default: now).")
def preview(niche: str, city: str, country: str, now_text: str | None) -> None:
    """Show the queries a row would produce, their regions and schedule. Writes nothing."""
    settings = get_settings()
    try:
        now = datetime.fromisoformat(now_text) if now_text else datetime.now(timezone.utc)
    except ValueError:
        raise click.BadParameter(f"{now_text!r} is not an ISO date-time", param_hint="--now")
    if now.tzinfo is None:
        now = now.replace(tzinfo=settings.tz)
    try:
        planned = generate_queries(InputRow(niche=niche, city=city, country=country), settings, now)
    except RowError as exc:
        raise click.ClickException(f"bad row: {exc}") from None
    if settings.is_sqlite and not Path(settings.sqlite_path).exists() and not settings.database_url:
        schedule(planned, settings, now)  # no database yet: do not create one
    else:
        try:  # count what is already booked per night; never write
            with session_scope() as session:
                schedule(planned, settings, now, db_booked(session))
                session.rollback()
        except (OperationalError, ProgrammingError):
            schedule(planned, settings, now)
    for query in planned:
        when = query.scheduled_for.astimezone(settings.tz) if query.scheduled_for else None
        click.echo(f"{query.query_text!r} page={query.page} lr={query.region_id} "
                   f"({query.region_source}) at {when:%Y-%m-%d %H:%M:%S %Z}")
        if query.region_warning:
            click.echo(f"  warning: {query.region_warning}")
        click.echo(f"  hash={query.query_hash}")


COMMANDS = [sync_command, queries]
