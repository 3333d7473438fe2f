"""Crawl one company site for emails: the homepage, then contact-like pages, a bounded number.

`crawl_many` runs sites concurrently (ENRICH_CONCURRENCY) over one shared `Fetcher`; each site
is crawled page by page, so requests to one host never overlap.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urlsplit

from leadgen.config import Settings
from leadgen.enrich.extract import (
    Candidate,
    analyse_page,
    domain_kind,
    excerpt,
    merge_candidates,
    registrable,
    role_kind,
)
from leadgen.enrich.fetch import Fetcher, FetchResult

# Outcomes; all but `ok` leave the company contacts_not_found with this reason.
OK, UNREACHABLE, BLOCKED, ROBOTS, NO_EMAIL = "ok", "unreachable", "blocked", "robots", "no_email"

_TEXT_SCORES = (
    (re.compile(r"контакт|contact|связаться|связь с нами|как (?:нас )?найти|где мы", re.I), 10),
    (re.compile(r"обратная связь|feedback|напишите нам|write to us", re.I), 6),
    (re.compile(r"о компании|о нас|about|компания|company|реквизит|requisites", re.I), 5),
)
_URL_SCORES = (
    (re.compile(r"kontakt|contact|svyaz|connect|feedback|obratnaya", re.I), 8),
    (re.compile(r"about|o-kompanii|o_kompanii|okompanii|o-nas|onas|company|rekvizit", re.I), 4),
)
_SKIP_EXT = re.compile(
    r"\.(?:jpe?g|png|gif|webp|svg|ico|pdf|docx?|xlsx?|pptx?|zip|rar|7z|gz|mp[34]|avi|mov|css|js|"
    r"xml|json|txt|woff2?|ttf)$",
    re.I,
)
GUESSED_PATHS = ("/contacts/", "/kontakty/", "/contact/", "/about/")
CONTACT_SCORE = 8  # a link at least this strong is a contact page


@dataclass(frozen=True)
class CompanyRef:
    id: int
    domain: str
    homepage_url: str


@dataclass
class SiteResult:
    company_id: int
    domain: str
    outcome: str
    emails: list[Candidate] = field(default_factory=list)
    excerpt: str = ""
    pages_fetched: int = 0
    detail: str = ""
    final_url: str = ""

    @property
    def primary(self) -> Candidate | None:
        return self.emails[0] if self.emails else None


def score_link(url: str, text: str) -> int:
    score = 0
    for pattern, points in _TEXT_SCORES:
        if pattern.search(text):
            score = max(score, points)
    path = urlsplit(url).path
    for pattern, points in _URL_SCORES:
        if pattern.search(path):
            score += points
            break
    return score


def contact_links(links, base_url: str, site_domain: str, limit: int) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    """Same-site contact-like links, best first, without repeats."""
    best: dict[str, tuple[int, str]] = {}
    base = urldefrag(base_url)[0].rstrip("/")
    for link in links:
        url = urldefrag(link.url)[0]
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            continue
        if registrable(parts.hostname) != registrable(site_domain):
            continue
        if _SKIP_EXT.search(parts.path) or url.rstrip("/") == base or parts.path in {"", "/"}:
            continue
        score = score_link(url, link.text)
        key = url.rstrip("/")
        if score > 0 and score > best.get(key, (0, ""))[0]:
            best[key] = (score, url)
    return sorted(best.values(), key=lambda item: -item[0])[:limit]


def _confident(emails: list[Candidate], domain: str) -> bool:
    """An own-domain general inbox found by a reliable method: no need to look further."""
    if not emails:
        return False
    top = emails[0]
    return (domain_kind(top.email, domain) == "own" and role_kind(top.email) == "general"
            and top.method != "obfuscated")


def _failure_outcome(result: FetchResult) -> str:
    error = result.error or ""
    if error == "blocked":
        return BLOCKED
    if error == "robots":
        return ROBOTS
    if error in {"http_403", "http_429", "http_401", "http_451"}:
        return BLOCKED
    return UNREACHABLE


async def crawl_site(fetcher: Fetcher, company: CompanyRef) -> SiteResult:
    """Fetch and read one site; never raises for a site's own faults."""
    settings = fetcher.settings
    domain = company.domain.lower()
    host = urlsplit(company.homepage_url).hostname or domain
    if registrable(host) != registrable(domain):
        host = domain
    result = SiteResult(company.id, domain, UNREACHABLE)
    home = await fetcher.fetch(f"https://{host}/")
    if home.html is None and home.error in {"unreachable", "timeout"}:
        home = await fetcher.fetch(f"http://{host}/")
    if home.html is None:
        result.outcome = _failure_outcome(home)
        result.detail = f"{home.error}: {home.detail}"[:500]
        result.final_url = home.final_url
        return result
    pages: list[list[Candidate]] = []
    result.pages_fetched = 1
    result.final_url = home.final_url
    analysis = analyse_page(home.html, home.final_url, domain)
    pages.append(analysis.candidates)
    result.excerpt = excerpt(analysis.text, settings.homepage_excerpt_limit)
    budget = settings.enrich_max_pages - 1
    queue = contact_links(analysis.links, home.final_url, domain, budget)
    if not queue and not analysis.candidates:
        root = home.final_url.split("/", 3)
        origin = "/".join(root[:3])
        queue = [(CONTACT_SCORE, origin + path) for path in GUESSED_PATHS[:budget]]
    seen = {home.final_url.rstrip("/"), home.url.rstrip("/")}
    emails = merge_candidates(pages, domain)
    for score, url in queue:
        if budget <= 0 or (_confident(emails, domain) and result.pages_fetched > 1):
            break
        if url.rstrip("/") in seen:
            continue
        seen.add(url.rstrip("/"))
        page = await fetcher.fetch(url)
        budget -= 1
        if page.html is None:
            continue
        seen.add(page.final_url.rstrip("/"))
        result.pages_fetched += 1
        pages.append(analyse_page(page.html, page.final_url, domain).candidates)
        emails = merge_candidates(pages, domain)
        if score >= CONTACT_SCORE and _confident(emails, domain):
            break
    result.emails = emails
    result.outcome = OK if emails else NO_EMAIL
    return result


async def crawl_many_async(
    companies: list[CompanyRef], settings: Settings, fetcher: Fetcher | None = None
) -> dict[int, SiteResult]:
    """Crawl many sites concurrently; one result per company."""
    own = fetcher is None
    fetcher = fetcher or Fetcher(settings)
    semaphore = asyncio.Semaphore(settings.enrich_concurrency)
    results: dict[int, SiteResult] = {}

    async def one(company: CompanyRef) -> None:
        async with semaphore:
            try:
                results[company.id] = await crawl_site(fetcher, company)
            except Exception as exc:  # noqa: BLE001 - one bad site never stops the batch
                results[company.id] = SiteResult(company.id, company.domain, UNREACHABLE,
                                                 detail=f"crawler error: {exc!r}"[:500])

    try:
        await asyncio.gather(*(one(company) for company in companies))
    finally:
        if own:
            await fetcher.aclose()
    return results


def crawl_many(companies: list[CompanyRef], settings: Settings) -> dict[int, SiteResult]:
    """Synchronous entry point (Celery tasks, the CLI): runs its own event loop."""
    return asyncio.run(crawl_many_async(companies, settings))
