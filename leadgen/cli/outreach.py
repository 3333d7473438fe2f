"""`leadgen optout …` and `leadgen outbox …`."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from leadgen.config import get_settings
from leadgen.db import session_scope
from leadgen.models import OutreachMessage, utcnow
from leadgen.outreach import optout as registry
from leadgen.outreach.queue import release_held


@click.group()
def optout() -> None:
    """Opt-out registry: email addresses and whole domains that must never be mailed."""


@optout.command("add")
@click.argument("values", nargs=-1, required=True)
@click.option("--reason", default=None, help="Why (kept with the entry).")
def optout_add(values: tuple[str, ...], reason: str | None) -> None:
    """Add emails or domains; matching companies become opted_out, queued mail is skipped."""
    with session_scope() as session:
        for value in values:
            try:
                result = registry.add(session, value, source="cli", reason=reason)
            except registry.OptOutError as exc:
                raise click.BadParameter(str(exc)) from None
            state = "added" if result.created else "already present"
            click.echo(f"{result.kind} {result.value}: {state}; {result.companies} companies "
                       f"opted out, {result.messages} queued messages skipped")


@optout.command("remove")
@click.argument("values", nargs=-1, required=True)
def optout_remove(values: tuple[str, ...]) -> None:
    """Remove entries (companies already marked opted_out stay so)."""
    with session_scope() as session:
        for value in values:
            try:
                removed = registry.remove(session, value)
            except registry.OptOutError as exc:
                raise click.BadParameter(str(exc)) from None
            click.echo(f"{value}: {'removed' if removed else 'not found'}")


@optout.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--reason", default=None)
def optout_import(path: str, reason: str | None) -> None:
    """Import a CSV (column email/domain/value, else the first) or one value per line."""
    with session_scope() as session:
        result = registry.import_file(session, path, source=f"import:{path}", reason=reason)
    click.echo(f"added {result.added}, already present {result.existing}, invalid {result.invalid}; "
               f"{result.companies} companies opted out, {result.messages} queued messages skipped")


@optout.command("list")
@click.option("--kind", type=click.Choice(["email", "domain"]), default=None)
def optout_list(kind: str | None) -> None:
    """Print the registry."""
    with session_scope() as session:
        for entry in registry.list_optouts(session, kind):
            when = entry.created_at.strftime("%Y-%m-%d %H:%M")
            click.echo(f"{entry.kind}\t{entry.value}\t{when}\t{entry.source or ''}\t{entry.reason or ''}")


@click.group()
def outbox() -> None:
    """Outgoing first emails."""


def _line(message: OutreachMessage) -> str:
    when = message.sent_at or message.sending_started_at or message.scheduled_for
    stamp = when.strftime("%Y-%m-%d %H:%M") if when else "-"
    return (f"#{message.id}\t{message.status}\t{stamp}\t{message.to_email}\t"
            f"{message.subject[:60]}\t{message.last_error or ''}")


@outbox.command("list")
@click.option("--status", default=None, help="Only this status (scheduled, sent, unknown, …).")
@click.option("--limit", default=50, show_default=True)
def outbox_list(status: str | None, limit: int) -> None:
    """Messages, newest first, and a count per status."""
    with session_scope() as session:
        counts = dict(session.execute(
            select(OutreachMessage.status, func.count()).group_by(OutreachMessage.status)).all())
        click.echo("  ".join(f"{name}: {count}" for name, count in sorted(counts.items()))
                   or "no messages")
        query = select(OutreachMessage).order_by(OutreachMessage.id.desc()).limit(limit)
        if status:
            query = query.where(OutreachMessage.status == status)
        for message in session.scalars(query):
            click.echo(_line(message))


@outbox.command("review")
@click.option("--resend", "resend", type=int, multiple=True,
              help="Send this unknown message again (it may already have been delivered).")
@click.option("--drop", "drop", type=int, multiple=True, help="Never send this message.")
@click.option("--release", "release", type=int, multiple=True,
              help="Approve a held message: it gets a mailbox and a slot.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def outbox_review(resend: tuple[int, ...], drop: tuple[int, ...], release: tuple[int, ...],
                  yes: bool) -> None:
    """List messages whose delivery is unknown (a crash mid-send), and resend or drop them."""
    now = utcnow()
    with session_scope() as session:
        for message_pk in drop:
            message = session.get(OutreachMessage, message_pk)
            if message is None or message.status not in ("unknown", "held"):
                raise click.ClickException(f"message {message_pk} is not unknown or held")
            message.status, message.last_error, message.updated_at = (
                "skipped", "dropped in review", now)
            click.echo(f"#{message_pk}: dropped")
        for message_pk in resend:
            message = session.get(OutreachMessage, message_pk)
            if message is None or message.status != "unknown":
                raise click.ClickException(f"message {message_pk} is not unknown")
            if not yes and not click.confirm(
                    f"#{message_pk} to {message.to_email} may already have been delivered. "
                    "Send it again?", default=False):
                click.echo(f"#{message_pk}: left as unknown")
                continue
            # Same Message-ID: a receiving system that got the first copy can tell.
            message.status, message.scheduled_for, message.updated_at = "scheduled", now, now
            message.last_error, message.lease_until = "resend approved in review", None
            message.sending_started_at = None
            click.echo(f"#{message_pk}: scheduled again")
        for message_pk in release:
            slot = release_held(session, message_pk, get_settings(), now)
            if slot is None:
                raise click.ClickException(f"message {message_pk} is not held (or no mailbox)")
            click.echo(f"#{message_pk}: scheduled for {slot:%Y-%m-%d %H:%M} UTC")
        if resend or drop or release:
            return
        pending = list(session.scalars(
            select(OutreachMessage).where(OutreachMessage.status.in_(("unknown", "held")))
            .order_by(OutreachMessage.id)))
        if not pending:
            click.echo("nothing to review")
            return
        for message in pending:
            click.echo(_line(message))
        click.echo("\n--resend ID (unknown: may duplicate), --drop ID, --release ID (held)")




@click.group()
def unsubscribe() -> None:
    """The one-click unsubscribe endpoint behind UNSUBSCRIBE_URL (RFC 8058)."""


@unsubscribe.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
def unsubscribe_serve(host: str, port: int) -> None:
    """Serve POST <UNSUBSCRIBE_URL>/<token> (put your HTTPS reverse proxy in front)."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    from leadgen.outreach.unsubscribe import make_app

    settings = get_settings()
    if not settings.unsubscribe_secret:
        raise click.ClickException("UNSUBSCRIBE_SECRET is empty: tokens cannot be verified")

    class ThreadingServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    with make_server(host, port, make_app(settings), server_class=ThreadingServer) as server:
        click.echo(f"unsubscribe endpoint on http://{host}:{port}/<token>")
        server.serve_forever()


COMMANDS = [optout, outbox, unsubscribe]
