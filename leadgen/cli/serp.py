"""`leadgen serp parse FILE.xml`: look at what the ingest would read from a SERP."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from leadgen.serp.blocklist import Blocklist
from leadgen.serp.domains import normalize_url, registrable_domain, url_host
from leadgen.serp.names import choose_name
from leadgen.serp.parse import SerpParseError, parse_serp


@click.group()
def serp() -> None:
    """Yandex search results (SERP XML)."""


def _doc_row(doc, blocklist: Blocklist) -> dict:  # noqa: ANN001 - SerpDoc
    try:
        url = normalize_url(doc.url)
        host = url_host(url)
        domain = registrable_domain(host)
    except ValueError:
        url, host, domain = doc.url, None, None
    name = choose_name(doc.title, doc.snippet, domain) if domain else None
    return {
        "position": doc.position, "url": url, "domain": domain, "title": doc.title,
        "snippet": doc.snippet, "lang": doc.lang, "touchdown": doc.touchdown,
        "blocked": domain is None or (host is not None and blocklist.is_blocked(host)),
        "name": name.name if name else None, "name_source": name.source if name else None,
    }


@serp.command("parse")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def serp_parse(file: Path, as_json: bool) -> None:
    """Print the documents of a Yandex XML response, or its error code."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        click.echo(f"leadgen serp parse: cannot read {file}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    try:
        page = parse_serp(data)
    except SerpParseError as exc:
        click.echo(f"leadgen serp parse: {file}: {exc}", err=True)
        sys.exit(1)
    from leadgen.config import get_settings

    blocklist = Blocklist(get_settings().search_blocked_domains)
    docs = [_doc_row(doc, blocklist) for doc in page.docs]
    if as_json:
        click.echo(json.dumps({
            "error_code": page.error_code, "error_text": page.error_text, "found": page.found,
            "reqid": page.reqid, "query": page.query, "docs": docs,
        }, ensure_ascii=False, indent=2))
        return
    if page.error_code is not None:
        meaning = {15: "nothing found (an empty result)", 32: "daily limit exceeded",
                   55: "RPS limit exceeded"}.get(page.error_code, "search error")
        click.echo(f"error {page.error_code} ({meaning}): {page.error_text or ''}")
    click.echo(f"{len(docs)} documents; found: {page.found}; reqid: {page.reqid}")
    for doc in docs:
        flag = " [blocked]" if doc["blocked"] else ""
        click.echo(f"{doc['position']:>3}. {doc['domain'] or '-'}{flag}  {doc['url']}")
        click.echo(f"     title: {doc['title'] or '-'}   lang: {doc['lang'] or '-'}")
        click.echo(f"     name: {doc['name'] or '-'} ({doc['name_source'] or '-'})")
        if doc["snippet"]:
            click.echo(f"     {doc['snippet'][:200]}")


COMMANDS = [serp]
