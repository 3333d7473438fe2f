"""`leadgen extract FILE.html --url PAGE_URL [--json]` and `leadgen enrich [--company-id N]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from leadgen.config import get_settings
from leadgen.enrich.extract import host_of, registrable


def _read_html(path: str) -> str:
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        data = Path(path).read_bytes()
    from leadgen.enrich.fetch import decode_html

    text, _ = decode_html(data, None)
    return text


@click.command("extract")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--url", "page_url", required=True, help="The URL the page was fetched from.")
@click.option("--domain", "company_domain", default=None,
              help="The company's domain (default: the page URL's registrable domain).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, best first.")
def extract(file: str, page_url: str, company_domain: str | None, as_json: bool) -> None:
    """Print the email candidates of one saved HTML page, best first."""
    from leadgen.enrich.extract import extract_emails

    domain = company_domain or registrable(host_of(page_url)) or None
    candidates = extract_emails(_read_html(file), page_url, domain)
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in candidates], ensure_ascii=False, indent=2))
        return
    if not candidates:
        click.echo("no email found")
        return
    for c in candidates:
        click.echo(f"{c.confidence:.3f}  {c.method:<10}  {c.email}")


@click.command("enrich")
@click.option("--company-id", "company_ids", type=int, multiple=True,
              help="Enrich these companies (default: every due company, one batch).")
@click.option("--limit", type=int, default=None, help="At most this many companies.")
def enrich(company_ids: tuple[int, ...], limit: int | None) -> None:
    """Crawl company sites for emails now, in this process."""
    from leadgen.enrich.service import enrich_companies

    settings = get_settings()
    outcomes = enrich_companies(list(company_ids) or None, settings, limit=limit)
    if not outcomes:
        click.echo("nothing to enrich (no due company, or already claimed)")
        return
    for o in outcomes:
        tail = o.primary or o.reason or ""
        click.echo(f"company {o.company_id}: {o.status} {tail}".rstrip())


COMMANDS = [extract, enrich]
