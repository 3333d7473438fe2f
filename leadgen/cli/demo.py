"""`leadgen demo`."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def _as_message(item: Any) -> email.message.EmailMessage:
    raw = getattr(item, "raw", None)
    if raw is None and isinstance(item, dict):
        raw = item.get("raw")
    if isinstance(raw, str):
        raw = raw.encode()
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("var/demo"),
              show_default=True, help="Where the database, sandbox keys and mailbox go.")
@click.option("--database", default=None,
              help="A database URL (e.g. postgresql+psycopg://…); default: a SQLite file.")
@click.option("--broker", default=None,
              help="A Redis URL: run real `celery worker` and `celery beat` processes.")
@click.option("--seed", default=7, show_default=True, help="The sandbox world's seed.")
@click.option("--timeout", default=600.0, show_default=True, help="Give up after this many seconds.")
def demo(directory: Path, database: str | None, broker: str | None, seed: int,
         timeout: float) -> None:
    """Run the whole pipeline against the sandbox: sheet → search → sites → emails → SMTP."""
    from leadgen.demo import run_demo

    console = Console()
    mode = "celery worker + beat on " + broker if broker else "Celery in process"
    console.print(f"[bold]leadgen demo[/bold] — sandbox, {mode}, database "
                  f"{database or directory / 'leadgen.sqlite3'}")
    with Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bars:
        queries = bars.add_task("Yandex searches", total=None)
        companies = bars.add_task("Company sites crawled", total=None)
        messages = bars.add_task("Emails sent", total=None)

        def show(progress: Any) -> None:
            bars.update(queries, completed=progress.queries_done, total=progress.queries_total or None)
            bars.update(companies, completed=progress.companies_done,
                        total=progress.companies_total or None)
            bars.update(messages, completed=progress.messages_sent,
                        total=progress.messages_total or None)

        result = run_demo(directory, database=database, broker=broker, seed=seed,
                          timeout=timeout, on_progress=show)

    _print_funnel(console, result.database_url)
    for item in result.sample_emails:
        message = _as_message(item)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body else ""
        console.print(Panel(f"[bold]From:[/bold] {message['From']}\n[bold]To:[/bold] {message['To']}\n"
                            f"[bold]Subject:[/bold] {message['Subject']}\n\n{text.strip()}",
                            title="A delivered email", expand=False))
    console.print(f"Database: {result.database_url}")
    console.print(f"Sandbox mailbox: {result.mailbox_path}")
    console.print(f"Finished in {result.seconds:.0f} s. Run `leadgen report` with "
                  f"DATABASE_URL={result.database_url} to see the funnel again.")
    if not result.progress.finished:
        raise click.ClickException("the pipeline did not finish before the timeout")


def _print_funnel(console: Console, database_url: str) -> None:
    from leadgen.config import get_settings
    from leadgen.db import session_scope
    from leadgen.report import funnel, render_table

    with session_scope(database_url) as session:
        rows = funnel(session, get_settings(), by="batch")
    console.print(render_table(rows))


COMMANDS = [demo]
