"""Email extraction from one HTML page: a pure function of (HTML, page URL).

Every form a Russian SMB site uses is read: `mailto:` links (percent-decoded, several per link),
visible text, obfuscations (`[at]`, `(at)`, «собака», `[dot]`, spaced), HTML entities, Cloudflare
`data-cfemail`, JSON-LD/schema.org and microdata. Traps are rejected: image names, placeholders,
invalid syntax, no-reply, script/tracking addresses and web-studio footer credits.
Candidates are ranked best first: the company's own domain, then general inboxes.
"""

from __future__ import annotations

import difflib
import functools
import html as htmllib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

from email_validator import EmailNotValidError, validate_email
from selectolax.lexbor import LexborHTMLParser, LexborNode

# --- vocabularies ------------------------------------------------------------------------------

METHOD_CONFIDENCE = {
    "mailto": 0.95,
    "jsonld": 0.92,
    "microdata": 0.92,
    "cfemail": 0.9,
    "text": 0.85,
    "obfuscated": 0.7,
}

FREE_MAIL = frozenset(
    """mail.ru bk.ru inbox.ru list.ru internet.ru yandex.ru ya.ru yandex.com yandex.by yandex.kz
    yandex.ua narod.ru rambler.ru lenta.ru autorambler.ru ro.ru myrambler.ru gmail.com
    googlemail.com hotmail.com outlook.com live.com msn.com yahoo.com icloud.com me.com mac.com
    mail.com gmx.com gmx.net protonmail.com proton.me ukr.net i.ua tut.by qip.ru pochta.ru
    e1.ru ngs.ru aol.com zoho.com yandex.uz mail.ua""".split()
)

GENERAL_ROLES = frozenset(
    """info sales office zakaz zakazy order orders mail contact contacts hello welcome manager
    managers sale shop client clients kontakt kontakty inbox reception secretary priem priemnaya
    commerce commercial opt company general ask enquiries enquiry inquiry request requests zayavka
    zayavki booking bron service team corp post pochta main""".split()
)
LOW_ROLES = frozenset(
    """hr job jobs career careers resume cv rabota vacancy vacancies vakansii buh buhgalter
    buhgalteriya accounting bookkeeping finance billing abuse postmaster hostmaster webmaster
    admin administrator root press pr media legal privacy gdpr security dpo pd personaldata
    tender tenders zakupki procurement supply snab support reklama ads advert help helpdesk
    partner partners dealer""".split()
)
NO_REPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|mailer[-_.]?daemon|bounces?|"
    r"notifications?|notify|daemon|nobody)(?:[-_.+].*)?$"
)
TRACKING_DOMAINS = (
    "sentry.io", "sentry-next.wixpress.com", "sentry.wixpress.com", "wixpress.com", "getsentry.com",
    "bugsnag.com", "rollbar.com", "sendgrid.net", "mandrillapp.com", "amazonses.com",
    "mailgun.org", "list-manage.com", "mcsv.net", "mailchimp.com", "sparkpostmail.com",
    "intercom-mail.com", "tracking.", "pixel.", "localhost",
)
FILE_SUFFIXES = frozenset(
    """png jpg jpeg gif webp svg bmp ico tif tiff avif heic css js mjs json xml php html htm
    pdf woff woff2 ttf eot otf mp4 webm mp3 map txt zip rar gz doc docx xls xlsx""".split()
)
PLACEHOLDER_LABELS = frozenset(
    """example domain yourdomain yoursite yourcompany mydomain mysite sitename website
    site-name your-domain your-site email e-mail sample test company-name companyname
    vashsait vash-sait vashdomen mailserver""".split()
)
PLACEHOLDER_LOCALS = frozenset(
    """example your yourname youremail your-email your.email your_email yourmail name username
    user email e-mail test sample ivanov ivan ivan.ivanov petrov login mymail myemail
    vashemail vasha.pochta imya address adres""".split()
)
STUDIO_MARKERS = re.compile(
    r"разработ|создани[ея]\s+(?:и\s+\S+\s+)?сайт|сделано\s+в|сайт\s+сделан|сайт\s+создан|"
    r"веб[- ]?студи|web[- ]?studio|дизайн[- ]?студи|продвижение\s+сайт|поддержка\s+сайт|"
    r"developed\s+by|made\s+by|designed\s+by|powered\s+by|создано\s+в|digital[- ]агентств",
    re.IGNORECASE,
)
CYRILLIC_TLDS = "рф|рус|москва|онлайн|сайт|орг|дети|бел|укр|қаз|срб|ею"

# --- regular expressions -----------------------------------------------------------------------

_LOCAL = r"[a-z0-9_%+\-]+(?:\.[a-z0-9_%+\-]+)*"
_LABEL = r"[a-z0-9а-яё](?:[a-z0-9а-яё\-]{0,61}[a-z0-9а-яё])?"
_TLD = rf"(?:[a-z]{{2,24}}(?![a-z0-9\-])|(?:{CYRILLIC_TLDS})(?![a-zа-яё0-9\-]))"
EMAIL_RE = re.compile(rf"(?<![a-z0-9_%+.\-])({_LOCAL})@((?:{_LABEL}\.)+{_TLD})", re.IGNORECASE)

_AT = (
    r"\s*(?:\[\s*(?:at|@|собака)\s*\]|\(\s*(?:at|@|собака)\s*\)|\{\s*(?:at|@|собака)\s*\}|"
    r"<\s*(?:at|собака)\s*>|«\s*собака\s*»|\"\s*собака\s*\")\s*|\s+собака\s+|\s+@\s*|\s*@\s+"
)
_DOT = (
    r"\s*(?:\[\s*(?:dot|\.|точка)\s*\]|\(\s*(?:dot|\.|точка)\s*\)|\{\s*(?:dot|\.|точка)\s*\}|"
    r"<\s*(?:dot|точка)\s*>)\s*|\s+точка\s+|\s+\.\s+"
)
AT_RE = re.compile(_AT, re.IGNORECASE)
DOT_RE = re.compile(_DOT, re.IGNORECASE)
SPACED_EN_RE = re.compile(
    r"(?<![\w.])([a-z0-9_.+\-]+)\s+at\s+([a-z0-9\-]+(?:\s+dot\s+[a-z0-9\-]+)*\s+dot\s+[a-z]{2,24})\b",
    re.IGNORECASE,
)
_EN_DOT_RE = re.compile(r"\s+dot\s+", re.IGNORECASE)
OBFUSCATION_HINT = re.compile(r"\bat\b|собака|@|\bdot\b|точка", re.IGNORECASE)
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")
WS_RE = re.compile(r"\s+")

BLOCK_TAGS = frozenset(
    """address article aside blockquote br dd details dialog div dl dt fieldset figcaption figure
    footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p pre section table tbody td
    tfoot th thead tr ul option button label select textarea title body html""".split()
)
SKIP_TAGS = ["script", "style", "noscript", "template", "svg", "iframe", "object", "head"]


@dataclass(frozen=True)
class Candidate:
    """One email found on a page, with how it was found and how much we trust it."""

    email: str
    method: str
    confidence: float
    context: str = ""
    source_url: str = ""
    occurrences: int = 1

    def as_dict(self) -> dict[str, object]:
        return {
            "email": self.email,
            "method": self.method,
            "confidence": self.confidence,
            "context": self.context,
            "source_url": self.source_url,
            "occurrences": self.occurrences,
        }


@dataclass
class Link:
    url: str
    text: str


@dataclass
class PageAnalysis:
    candidates: list[Candidate]
    links: list[Link] = field(default_factory=list)
    text: str = ""
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (email, why)


# --- domains -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _psl():  # type: ignore[no-untyped-def]
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


@functools.lru_cache(maxsize=50_000)
def registrable(host: str) -> str:
    """`www.shop.example.co.uk` → `example.co.uk`; an unknown suffix keeps the host."""
    host = host.strip().strip(".").lower()
    if host.startswith("www."):
        host = host[4:]
    try:
        return _psl().privatesuffix(host) or host
    except Exception:  # noqa: BLE001 - odd hosts keep their own name
        return host


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


_TRANSLIT = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "sch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
})


def _label_key(domain: str) -> str:
    """The registrable label, Cyrillic transliterated, separators dropped: `строй-мастер.рф` →
    `stroymaster`."""
    label = registrable(domain).split(".", 1)[0]
    if label.startswith("xn--"):
        try:
            label = label.encode("ascii").decode("idna")
        except UnicodeError:
            pass
    return re.sub(r"[^a-z0-9]", "", label.lower().translate(_TRANSLIT))


@functools.lru_cache(maxsize=20_000)
def is_alias_domain(domain: str, company_domain: str) -> bool:
    """A mail domain that is the company's name in another spelling (an .рф site mailing from
    `brand.ru`): same transliterated label, or nearly."""
    a, b = _label_key(domain), _label_key(company_domain)
    if len(a) < 4 or len(b) < 4:
        return False
    if a == b or (min(len(a), len(b)) >= 6 and (a in b or b in a)):
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.85


def domain_kind(email: str, company_domain: str | None) -> str:
    """own | free | foreign. A non-free domain that spells the company's name counts as own."""
    domain = email.rsplit("@", 1)[-1]
    if company_domain and registrable(domain) == registrable(company_domain):
        return "own"
    if domain in FREE_MAIL or registrable(domain) in FREE_MAIL:
        return "free"
    if company_domain and is_alias_domain(domain, company_domain):
        return "own"
    return "foreign"


def role_kind(email: str) -> str:
    """general | low | personal."""
    local = email.split("@", 1)[0].lower()
    base = re.split(r"[._+\-]", local, maxsplit=1)[0]
    if local in GENERAL_ROLES or base in GENERAL_ROLES:
        return "general"
    if local in LOW_ROLES or base in LOW_ROLES:
        return "low"
    return "personal"


def rank_confidence(method_confidence: float, kind: str, role: str, occurrences: int = 1) -> float:
    """A 0..1 score that orders candidates: own domain > free mail > foreign; general inboxes
    before personal names before hr@/buh@-type inboxes; the extraction method breaks ties."""
    score = {"own": 0.55, "free": 0.35, "foreign": 0.25}[kind]
    score += {"general": 0.3, "personal": 0.12, "low": 0.05}[role]
    score += 0.15 * method_confidence
    score += 0.005 * min(occurrences - 1, 3)
    return round(min(score, 1.0), 4)


# --- validation and traps ----------------------------------------------------------------------


@functools.lru_cache(maxsize=20_000)
def normalise_email(raw: str) -> tuple[str | None, str]:
    """(normalised address, "") or (None, why it was rejected)."""
    raw = raw.strip().strip(".,;:'\"<>()[]").lower()
    if not raw or "@" not in raw or len(raw) > 254:
        return None, "syntax"
    local, _, domain = raw.rpartition("@")
    tld = domain.rsplit(".", 1)[-1]
    if tld in FILE_SUFFIXES or re.search(r"\.(?:png|jpe?g|gif|webp|svg)$", local):
        return None, "file_name"
    if re.fullmatch(r"\d+x|\d+(?:\.\d+)?x", domain.split(".", 1)[0]) and tld in FILE_SUFFIXES:
        return None, "file_name"
    try:
        info = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None, "syntax"
    email = info.normalized.lower()
    local, _, domain = email.rpartition("@")
    if NO_REPLY.match(local):
        return None, "no_reply"
    if any(domain == t or domain.endswith("." + t) or domain.startswith(t) for t in TRACKING_DOMAINS):
        return None, "tracking"
    if re.fullmatch(r"[0-9a-f]{16,}", local) or re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", local
    ):
        return None, "tracking"
    first_label = domain.split(".", 1)[0]
    if first_label in PLACEHOLDER_LABELS or domain in {"mail.example", "email.com", "e-mail.ru"}:
        return None, "placeholder"
    if local in PLACEHOLDER_LOCALS and (domain in FREE_MAIL or first_label in PLACEHOLDER_LABELS):
        return None, "placeholder"
    if re.fullmatch(r"x+|(?:xxx|abc|qwerty|asdf|123)\w*", local) and len(local) <= 8:
        return None, "placeholder"
    return email, ""


def is_studio_credit(email: str, context: str, company_domain: str | None) -> bool:
    """A web studio's address in a «Разработка сайта — …» footer credit."""
    if domain_kind(email, company_domain) == "own":
        return False
    return bool(STUDIO_MARKERS.search(context))


# --- decoding helpers --------------------------------------------------------------------------


def decode_cfemail(hexdata: str) -> str | None:
    """Cloudflare email protection: first byte is the XOR key for the rest."""
    hexdata = hexdata.strip()
    if len(hexdata) < 4 or len(hexdata) % 2 or len(hexdata) > 1024:
        return None
    try:
        data = bytes.fromhex(hexdata)
    except ValueError:
        return None
    key = data[0]
    try:
        return bytes(b ^ key for b in data[1:]).decode("utf-8")
    except UnicodeDecodeError:
        return None


def mailto_addresses(href: str) -> list[str]:
    """`mailto:a%40x.ru,b@y.ru?subject=…` → ["a@x.ru", "b@y.ru"]."""
    value = href.strip()
    if value[:7].lower() != "mailto:":
        return []
    value = value[7:].split("?", 1)[0].split("#", 1)[0]
    value = htmllib.unescape(unquote(value))
    return [part for part in re.split(r"[,;\s]+", value) if "@" in part]


def deobfuscate(text: str) -> str:
    """Turn `info [at] site [dot] ru`, `info собака site.ru`, `info @ site . ru` into plain form."""
    # The patterns start with \s*: on long whitespace runs they would be quadratic.
    text = WS_RE.sub(" ", text)
    text = SPACED_EN_RE.sub(lambda m: m.group(1) + "@" + _EN_DOT_RE.sub(".", m.group(2)), text)
    text = AT_RE.sub("@", text)
    return DOT_RE.sub(".", text)


def clean_text(text: str) -> str:
    """Visible text for storage: no NUL/control characters, whitespace collapsed."""
    text = WS_RE.sub(" ", text)
    text = CONTROL_RE.sub("", text)
    if not text.isprintable():
        text = "".join(ch for ch in text if ch == " " or unicodedata.category(ch)[0] != "C"
                       or unicodedata.category(ch) == "Cf")
    return WS_RE.sub(" ", text).strip()


def excerpt(text: str, limit: int) -> str:
    text = clean_text(text)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit * 0.8 else cut


# --- the parser --------------------------------------------------------------------------------


def _node_text(node: LexborNode | None, limit: int = 200) -> str:
    if node is None:
        return ""
    try:
        return WS_RE.sub(" ", node.text(deep=True, separator=" "))[:limit].strip()
    except Exception:  # noqa: BLE001
        return ""


_CONTAINER_TAGS = frozenset({"body", "html", "main", "-undef", "#document"})


def _context_of(node: LexborNode) -> str:
    """The text around a link: its parent element, or the grandparent for a bare link."""
    own = _node_text(node, 120)
    parent = node.parent
    if parent is None or parent.tag in _CONTAINER_TAGS:
        return own
    text = _node_text(parent, 240)
    grand = parent.parent
    if len(text) - len(own) < 15 and grand is not None and grand.tag not in _CONTAINER_TAGS:
        text = _node_text(grand, 240) or text
    return text


def _line_context(text: str, start: int, end: int) -> str:
    """Up to 120 characters before and 40 after a match, within its line."""
    left = max(text.rfind("\n", 0, start) + 1, start - 120)
    right = text.find("\n", end)
    right = end + 40 if right < 0 else min(right, end + 40)
    return text[left:right]


def _visible_text(tree: LexborHTMLParser) -> str:
    """Body text with a line break around each block element, inline elements joined."""
    root = tree.body or tree.root
    if root is None:
        return ""
    parts: list[str] = []
    stack: list[LexborNode | None] = [root]  # None marks the end of a block element
    while stack:
        node = stack.pop()
        if node is None:
            parts.append("\n")
            continue
        if node.is_text_node:
            value = node.text_content
            if value:
                parts.append(value)
            continue
        block = node.tag in BLOCK_TAGS
        if block:
            parts.append("\n")
            stack.append(None)
        children = list(node.iter(include_text=True))
        children.reverse()
        stack.extend(children)
    return "".join(parts)


class _Collector:
    def __init__(self, page_url: str, company_domain: str | None) -> None:
        self.page_url = page_url
        self.company_domain = company_domain
        self.found: dict[str, Candidate] = {}
        self.order: dict[str, int] = {}
        self.rejected: list[tuple[str, str]] = []

    def add(self, raw: str, method: str, context: str) -> None:
        email, why = normalise_email(raw)
        if email is None:
            self.rejected.append((raw[:320], why))
            return
        context = clean_text(context)[:240]
        if is_studio_credit(email, context, self.company_domain):
            self.rejected.append((email, "studio"))
            return
        self.order.setdefault(email, len(self.order))
        old = self.found.get(email)
        if old is None:
            self.found[email] = Candidate(email, method, METHOD_CONFIDENCE[method], context,
                                          self.page_url)
        elif METHOD_CONFIDENCE[method] > old.confidence:
            self.found[email] = Candidate(email, method, METHOD_CONFIDENCE[method],
                                          context or old.context, self.page_url, old.occurrences + 1)
        else:
            self.found[email] = Candidate(old.email, old.method, old.confidence, old.context,
                                          old.source_url, old.occurrences + 1)

    def ranked(self) -> list[Candidate]:
        out = []
        for email, cand in self.found.items():
            score = rank_confidence(cand.confidence, domain_kind(email, self.company_domain),
                                    role_kind(email), cand.occurrences)
            out.append(Candidate(email, cand.method, score, cand.context, cand.source_url,
                                 cand.occurrences))
        out.sort(key=lambda c: (-c.confidence, self.order[c.email]))
        return out


def _jsonld_emails(data: object, depth: int = 0) -> list[str]:
    if depth > 30:
        return []
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and key.lower() in {"email", "schema:email"}:
                values = value if isinstance(value, list) else [value]
                for item in values:
                    if isinstance(item, str):
                        found.extend(mailto_addresses(item) if item.lower().startswith("mailto:")
                                     else [item])
            else:
                found.extend(_jsonld_emails(value, depth + 1))
    elif isinstance(data, list):
        for item in data[:500]:
            found.extend(_jsonld_emails(item, depth + 1))
    return found


def _load_json(text: str) -> object | None:
    text = text.strip()
    if text.startswith("<!--"):
        text = text[4:]
    if text.endswith("-->"):
        text = text[:-3]
    text = text.replace("<![CDATA[", "").replace("]]>", "")
    try:
        return json.loads(text, strict=False)
    except (ValueError, RecursionError):
        return None


_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)[^>]*>")
_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
_KEEP = re.compile(r"</?(?!(?:a|script|meta|title|html|head|body)\b)[a-zA-Z][a-zA-Z0-9:-]*[^>]*>")
MAX_DEPTH = 1000  # real pages nest a few dozen levels; the parser is quadratic in depth


def _flatten_if_too_deep(html: str) -> str:
    """A hostile page nested thousands of levels deep would take the parser minutes; such a
    page keeps only its links, scripts and text (the emails are still found)."""
    if html.count("<") < 4 * MAX_DEPTH:
        return html
    depth = 0
    for match in _TAG.finditer(html):
        name = match.group(2).lower()
        if name in _VOID or match.group(0).endswith("/>"):
            continue
        depth += -1 if match.group(1) else 1
        if depth > MAX_DEPTH:
            return _KEEP.sub(" ", html)
    return html


def analyse_page(html: str, page_url: str, company_domain: str | None = None) -> PageAnalysis:
    """Parse once: ranked email candidates, links (absolute URL + text) and the visible text."""
    if company_domain is None:
        company_domain = host_of(page_url) or None
    if "\x00" in html:
        html = html.replace("\x00", "")
    tree = LexborHTMLParser(_flatten_if_too_deep(html))
    col = _Collector(page_url, company_domain)
    links: list[Link] = []

    for node in tree.css("script"):
        kind = (node.attributes.get("type") or "").lower()
        if "ld+json" in kind:
            data = _load_json(node.text(deep=True) or "")
            for email in _jsonld_emails(data):
                col.add(email, "jsonld", "json-ld")

    for node in tree.css("[itemprop]"):
        props = (node.attributes.get("itemprop") or "").lower().split()
        if "email" not in props:
            continue
        attrs = node.attributes
        value = attrs.get("content") or attrs.get("href") or node.text(deep=True) or ""
        values = mailto_addresses(value) if value.lower().startswith("mailto:") else [value]
        for email in values:
            col.add(email, "microdata", _context_of(node))

    for node in tree.css("[data-cfemail]"):
        email = decode_cfemail(node.attributes.get("data-cfemail") or "")
        if email:
            col.add(email, "cfemail", _context_of(node))

    for node in tree.css("a[href]"):
        href = (node.attributes.get("href") or "").strip()
        low = href[:7].lower()
        if low == "mailto:":
            for email in mailto_addresses(href):
                col.add(email, "mailto", _context_of(node))
            continue
        if "/cdn-cgi/l/email-protection" in href and "#" in href:
            email = decode_cfemail(href.rsplit("#", 1)[1])
            if email:
                col.add(email, "cfemail", _context_of(node))
            continue
        if href[:11].lower().startswith(("javascript:", "tel:", "data:", "#", "sms:", "callto:")):
            continue
        try:
            url = urljoin(page_url, href)
        except ValueError:
            continue
        links.append(Link(url, WS_RE.sub(" ", node.text(deep=True) or "").strip()[:200]))

    tree.strip_tags(SKIP_TAGS)
    text = _visible_text(tree)
    if "&" in text:
        text = htmllib.unescape(text)
    plain = set()
    for match in EMAIL_RE.finditer(text):
        raw = f"{match.group(1)}@{match.group(2)}"
        plain.add(raw.lower())
        col.add(raw, "text", _line_context(text, match.start(), match.end()))
    if OBFUSCATION_HINT.search(text):
        for line in text.split("\n"):
            if not OBFUSCATION_HINT.search(line):
                continue
            line = WS_RE.sub(" ", line)
            clear = deobfuscate(line)
            if clear == line:
                continue
            for match in EMAIL_RE.finditer(clear):
                raw = f"{match.group(1)}@{match.group(2)}"
                if raw.lower() in plain:
                    continue
                col.add(raw, "obfuscated", _line_context(clear, match.start(), match.end()))
    return PageAnalysis(col.ranked(), links, text, col.rejected)


def extract_emails(html: str, page_url: str, company_domain: str | None = None) -> list[Candidate]:
    """Ranked email candidates of one page, best first."""
    return analyse_page(html, page_url, company_domain).candidates


def merge_candidates(
    pages: list[list[Candidate]], company_domain: str | None
) -> list[Candidate]:
    """Merge candidates of several pages of one site: one per email, best evidence kept,
    occurrences summed, re-ranked."""
    best: dict[str, Candidate] = {}
    counts: dict[str, int] = {}
    order: dict[str, int] = {}
    for page in pages:
        for cand in page:
            order.setdefault(cand.email, len(order))
            counts[cand.email] = counts.get(cand.email, 0) + cand.occurrences
            old = best.get(cand.email)
            if old is None or METHOD_CONFIDENCE[cand.method] > METHOD_CONFIDENCE[old.method]:
                best[cand.email] = cand
    out = []
    for email, cand in best.items():
        score = rank_confidence(METHOD_CONFIDENCE[cand.method], domain_kind(email, company_domain),
                                role_kind(email), counts[email])
        out.append(Candidate(email, cand.method, score, cand.context, cand.source_url,
                             counts[email]))
    out.sort(key=lambda c: (-c.confidence, order[c.email]))
    return out


def choose_primary(candidates: list[Candidate], company_domain: str | None) -> Candidate | None:
    """The address to write to: the best own-domain address, else the best other one."""
    if not candidates:
        return None
    ranked = sorted(
        candidates,
        key=lambda c: (
            {"own": 0, "free": 1, "foreign": 2}[domain_kind(c.email, company_domain)],
            {"general": 0, "personal": 1, "low": 2}[role_kind(c.email)],
            -c.confidence,
        ),
    )
    return ranked[0]
