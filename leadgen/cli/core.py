"""`leadgen db …` and `leadgen config check`."""

from __future__ import annotations

import json

import click

from leadgen import migrations
from leadgen.config import get_settings, production_gaps


@click.group()
def db() -> None:
    """Database schema (Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (same as `alembic upgrade head`)."""
    settings = get_settings()
    migrations.upgrade(settings.effective_database_url, revision)
    click.echo(f"database at {revision}: {settings.masked()['effective_database_url']}")


@db.command("downgrade")
@click.option("--revision", default="base", show_default=True)
@click.confirmation_option(prompt="This drops tables. Continue?")
def db_downgrade(revision: str) -> None:
    """Revert migrations (to `base` drops everything)."""
    migrations.downgrade(get_settings().effective_database_url, revision)
    click.echo(f"database at {revision}")


@click.group()
def config() -> None:
    """Configuration."""


@config.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def config_check(as_json: bool) -> None:
    """Print the effective configuration (secrets masked) and what production still needs."""
    settings = get_settings()
    values = settings.masked()
    gaps = production_gaps(settings)
    if as_json:
        click.echo(json.dumps({"settings": values, "missing_for_production": gaps},
                              default=str, ensure_ascii=False, indent=2))
        return
    width = max(len(key) for key in values)
    for key, value in sorted(values.items()):
        click.echo(f"{key.upper():<{width}}  {value}")
    click.echo("")
    if gaps:
        click.echo("Missing for a production run:")
        for gap in gaps:
            click.echo(f"  - {gap}")
    else:
        click.echo("Ready for a production run.")


COMMANDS = [db, config]
