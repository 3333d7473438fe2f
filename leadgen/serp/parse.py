"""Parse the Yandex search XML (the decoded `rawData` of a deferred operation).

The parser is defensive: no network, no DTD, no entity expansion, no huge trees, no recovery
from broken markup. It does not depend on child order; optional fields stay None; text is
flattened across `<hlword>` highlights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

ERROR_NOT_FOUND = 15
QUOTA_ERRORS = frozenset({32, 55, 100})  # daily limit, RPS limit, CAPTCHA: back off
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.ASCII)


class SerpParseError(ValueError):
    """The payload is not a Yandex search XML response."""


@dataclass(frozen=True, slots=True)
class SerpDoc:
    position: int  # 1-based, in document order across groups
    url: str
    domain: str | None = None  # Yandex's own <domain> (a host, not a registrable domain)
    title: str | None = None
    headline: str | None = None
    passages: tuple[str, ...] = ()
    lang: str | None = None
    modtime: str | None = None
    saved_copy_url: str | None = None
    touchdown: str | None = None  # e.g. "РКН: сайт нарушает закон РФ"
    doc_id: str | None = None

    @property
    def snippet(self) -> str | None:
        parts = [self.headline, *self.passages]
        text = " ".join(part for part in parts if part)
        return text or None


@dataclass(slots=True)
class SerpPage:
    docs: list[SerpDoc] = field(default_factory=list)
    error_code: int | None = None
    error_text: str | None = None
    found: int | None = None
    reqid: str | None = None
    query: str | None = None

    @property
    def is_empty_result(self) -> bool:
        return self.error_code == ERROR_NOT_FOUND

    @property
    def is_quota_error(self) -> bool:
        return self.error_code in QUOTA_ERRORS


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        recover=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
    )


def _text(element: etree._Element | None) -> str | None:
    """Whitespace-collapsed text content, across <hlword> and other inline children."""
    if element is None:
        return None
    if len(element):  # inline children (<hlword>)
        text = " ".join("".join(element.itertext()).split())
    else:
        text = element.text
        if not text:
            return None
        text = " ".join(text.split())
    return text or None


def _child(parent: etree._Element, tag: str) -> etree._Element | None:
    return parent.find(tag)


def _preview(data: bytes) -> str:
    head = data[:40].decode("utf-8", "replace")
    return head.replace("\n", " ").replace("\r", " ")


def _to_bytes(xml: bytes | str) -> bytes:
    if isinstance(xml, str):
        # lxml refuses str with an encoding declaration; the text is already decoded.
        return _XML_DECL.sub("", xml, count=1).encode("utf-8")
    if isinstance(xml, (bytes, bytearray, memoryview)):
        return bytes(xml)
    raise SerpParseError(f"expected XML bytes or str, got {type(xml).__name__}")


def parse_serp(xml: bytes | str) -> SerpPage:
    """Parse one Yandex search response; raise SerpParseError on anything that is not one."""
    data = _to_bytes(xml)
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise SerpParseError("empty SERP payload")
    if not stripped.startswith(b"<"):
        hint = " (still base64? rawData must be decoded)" if re.fullmatch(
            rb"[A-Za-z0-9+/=\s]+", stripped[:200]) else ""
        raise SerpParseError(f"not XML{hint}: starts with {_preview(stripped)!r}")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise SerpParseError(f"malformed SERP XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise SerpParseError("SERP XML with a DOCTYPE/DTD is refused (entities are not allowed)")
    if root.tag != "yandexsearch":
        raise SerpParseError(f"unexpected root element <{root.tag}>, expected <yandexsearch>")
    response = _child(root, "response")
    if response is None:
        raise SerpParseError("SERP XML without a <response> element")

    page = SerpPage(reqid=_text(_child(response, "reqid")))
    request = _child(root, "request")
    if request is not None:
        page.query = _text(_child(request, "query"))

    error = _child(response, "error")
    if error is not None:
        code = (error.get("code") or "").strip()
        try:
            page.error_code = int(code)
        except ValueError:
            raise SerpParseError(f"<error> with a non-numeric code {code!r}") from None
        page.error_text = _text(error)

    page.found = _found(response)
    results = _child(response, "results")
    if results is not None:
        page.docs = list(_docs(results))
    return page


def _found(response: etree._Element) -> int | None:
    counters = {el.get("priority"): el.text for el in response.findall("found")}
    value = counters.get("all") or next(iter(counters.values()), None)
    try:
        return int(value.strip()) if value else None
    except ValueError:
        return None


_FIELDS = ("url", "domain", "title", "headline", "modtime", "saved-copy-url")
_DOC_CHILDREN = (*_FIELDS, "passages", "properties")


def _docs(results: etree._Element):
    text_of = _text
    position = 0
    for doc in results.iter("doc"):
        position += 1
        fields: dict[str, str | None] = {}
        passages: list[str] = []
        lang = None
        # One pass in any order over the children that matter (lxml filters the rest in C).
        for child in doc.iterchildren(*_DOC_CHILDREN):
            tag = child.tag
            if tag == "passages":
                passages = [t for t in map(text_of, child.iterchildren("passage")) if t]
            elif tag == "properties":
                lang = text_of(child.find("lang"))
            else:
                fields[tag] = text_of(child)
        url = fields.get("url")
        if not url:  # nothing to link to; keep the numbering of the page
            continue
        yield SerpDoc(
            position=position,
            url=url,
            domain=fields.get("domain"),
            title=fields.get("title"),
            headline=fields.get("headline"),
            passages=tuple(passages),
            lang=lang,
            modtime=fields.get("modtime"),
            saved_copy_url=fields.get("saved-copy-url"),
            touchdown=(doc.get("touchdown") or "").strip() or None,
            doc_id=doc.get("id"),
        )
