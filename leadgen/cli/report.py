"""`leadgen report` (the funnel) and `leadgen export` (CSV)."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from rich.console import Console

from leadgen import export as export_mod
from leadgen import report as report_mod
from leadgen.config import ConfigError, get_settings
from leadgen.db import session_scope


@click.command("report")
@click.option("--by", type=click.Choice(["batch", "day", "batch_day"]), default="batch",
              show_default=True, help="Group by batch tag, local day, or both.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--sheet", is_flag=True, help="Also write the funnel to the REPORT tab of the sheet.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Only events from this local day (APP_TIMEZONE) on, YYYY-MM-DD.")
def report(by: str, as_json: bool, sheet: bool, since: datetime | None) -> None:
    """The funnel: queries → documents → companies → contacts → messages, with costs."""
    settings = get_settings()
    if sheet and not settings.google_sheet_id:
        raise ConfigError("GOOGLE_SHEET_ID is empty: --sheet needs the Google Sheet to write to")
    start = report_mod.since_local_date(since.date(), settings) if since else None
    with session_scope() as session:
        rows = report_mod.funnel(session, settings, by=by, since=start)  # type: ignore[arg-type]
    if as_json:
        click.echo(report_mod.to_json(rows))
    else:
        # A pipe or file gets the full width; a terminal its own.
        Console(width=None if sys.stdout.isatty() else 240).print(report_mod.render_table(rows))
    if sheet:
        written = report_mod.write_report_tab(rows, settings)
        click.echo(f"wrote {written} rows to the {report_mod.REPORT_TAB} tab", err=True)


@click.command("export")
@click.argument("kind", type=click.Choice(list(export_mod.KINDS)))
@click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv", show_default=True)
@click.option("--batch", "batch_tag", default=None,
              help='Only this batch tag ("(none)" for untagged rows).')
@click.option("--status", default=None, help="Only these statuses (comma-separated).")
@click.option("--output", "-o", default="-", show_default=True, help="File to write, - = stdout.")
@click.option("--excel", is_flag=True, help="Prepend a UTF-8 BOM so Excel reads Cyrillic.")
def export(kind: str, fmt: str, batch_tag: str | None, status: str | None, output: str,
           excel: bool) -> None:
    """Export companies, contacts or messages as CSV."""
    with session_scope() as session:
        rows = export_mod.export_rows(session, kind, batch_tag=batch_tag, status=status)  # type: ignore[arg-type]
        fields = export_mod.FIELDS[kind]
        if output == "-":
            count = export_mod.write_csv(rows, sys.stdout, fields, excel=excel)
            sys.stdout.flush()
        else:
            with open(output, "w", encoding="utf-8", newline="") as out:
                count = export_mod.write_csv(rows, out, fields, excel=excel)
    click.echo(f"exported {count} {kind}" + ("" if output == "-" else f" to {output}"), err=True)


COMMANDS = [report, export]
