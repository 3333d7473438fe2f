"""Render Yandex search XML in the shape of the real 2025 v2 samples (for tests and the
benchmarks; the sandbox has its own emulator)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from xml.sax.saxutils import escape, quoteattr


def _hl(text: str, words: Iterable[str]) -> str:
    """Escape `text` and wrap the given words in <hlword> like Yandex does."""
    out = escape(text)
    for word in words:
        out = out.replace(escape(word), f"<hlword>{escape(word)}</hlword>")
    return out


def render_serp(
    docs: Iterable[Mapping[str, object]], *, query: str = "query", highlight: Iterable[str] = (),
    error: tuple[int, str] | None = None, reqid: str = "1760985395103910-0-sas-209-BAL",
) -> str:
    """docs: mappings with url and optional title, headline, passages, lang, touchdown."""
    words = list(highlight)
    head = (
        '<?xml version="1.0" encoding="utf-8"?>\n<yandexsearch version="1.0">\n<request>'
        f"<query>{escape(query)}</query><page>0</page>"
        '<sortby order="descending" priority="no">rlv</sortby><maxpassages>3</maxpassages>'
        '<groupings><groupby attr="d" mode="deep" groups-on-page="100" docs-in-group="1" '
        'curcateg="-1"/></groupings></request>\n<response date="20251020T183635">\n'
    )
    if error is not None:
        return (head + f'<error code="{error[0]}">{escape(error[1])}</error>'
                f"<reqid>{reqid}</reqid></response>\n</yandexsearch>\n")
    parts = [head, f"<reqid>{reqid}</reqid>\n",
             '<found priority="all">117564</found>\n<found-human>Нашлось 118 тыс. ответов'
             "</found-human>\n<is-local>no</is-local>\n<results>\n"
             '<grouping attr="d" mode="deep" groups-on-page="100" docs-in-group="1" '
             'curcateg="-1">\n<page first="1" last="100">0</page>\n']
    for index, doc in enumerate(docs):
        url = str(doc["url"])
        host = url.split("://", 1)[-1].split("/", 1)[0]
        touchdown = doc.get("touchdown")
        attrs = f" touchdown={quoteattr(str(touchdown))}" if touchdown else ""
        parts.append(
            f'<group>\n<categ attr="d" name={quoteattr(host)}/>\n<doccount>3</doccount>\n'
            f'<relevance priority="all"/>\n<doc{attrs} id="Z{index:015X}">\n'
            '<relevance priority="all"/>\n'
            f"<saved-copy-url>https://yandexwebcache.net/yandbtm?fmode=inject&amp;url="
            f"{escape(url)}&amp;keyno=0</saved-copy-url>\n"
            f"<url>{escape(url)}</url>\n<domain>{escape(host)}</domain>\n"
        )
        if doc.get("title") is not None:
            parts.append(f"<title>{_hl(str(doc['title']), words)}</title>\n")
        if doc.get("headline"):
            parts.append(f"<headline>{_hl(str(doc['headline']), words)}</headline>\n")
        parts.append("<modtime>20240913T165046</modtime>\n<size>653</size>\n"
                     "<charset>utf-8</charset>\n<mime-type>text/html</mime-type>\n")
        passages = doc.get("passages") or ()
        if passages:
            parts.append("<passages>\n")
            for passage in passages:  # type: ignore[union-attr]
                parts.append(f"<passage>{_hl(str(passage), words)}</passage>\n")
            parts.append("</passages>\n")
        lang = doc.get("lang", "ru")
        parts.append("<properties>\n<_PassagesType>0</_PassagesType>\n"
                     + (f"<lang>{escape(str(lang))}</lang>\n" if lang else "")
                     + "</properties>\n</doc>\n</group>\n")
    parts.append('<found priority="all">807</found>\n<found-docs priority="all">117553'
                 "</found-docs>\n</grouping>\n</results>\n</response>\n<resource-usage>\n"
                 "<cpu-time-sum>3327477</cpu-time-sum>\n<cpu-time-max>21737</cpu-time-max>\n"
                 "</resource-usage>\n</yandexsearch>\n")
    return "".join(parts)
