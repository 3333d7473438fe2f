"""URL normalisation and registrable domains (public suffix list bundled with the
`publicsuffixlist` package: no network at run time)."""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import idna
from publicsuffixlist import PublicSuffixList

DEFAULT_PORTS = {"http": 80, "https": 443}
TRACKING_PARAMS = frozenset({"yclid", "gclid", "fbclid", "_openstat", "from"})
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_OTHER_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:(?!\d)")  # mailto:, javascript:
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


@functools.lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list shipped inside the package


@functools.lru_cache(maxsize=65536)
def to_ascii_host(host: str) -> str:
    """Lower-case punycode host without a trailing dot; ValueError if it is not a hostname."""
    host = host.strip().rstrip(".").lower()
    if not host:
        raise ValueError("empty host")
    if host.isascii():
        ascii_host = host
    else:
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"invalid internationalised host {host!r}: {exc}") from None
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in ascii_host.split(".")):
        raise ValueError(f"invalid host {host!r}")
    return ascii_host


_MAYBE_IP = re.compile(r"^\[?[0-9a-fA-F:.]+\]?$")


def _is_ip(host: str) -> bool:
    if not _MAYBE_IP.match(host) or ("." not in host and ":" not in host):
        return False  # a hostname: skip the (slow) ipaddress parse
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _strip_www(host: str) -> str:
    if host.startswith("www.") and host.count(".") >= 2:
        return host[4:]
    return host


def _clean_query(query: str) -> str:
    kept = []
    for pair in query.split("&"):
        if not pair:
            continue
        key = unquote(pair.split("=", 1)[0]).strip().lower()
        if key.startswith("utm_") or key in TRACKING_PARAMS:
            continue
        kept.append(pair)
    return "&".join(kept)


@functools.lru_cache(maxsize=65536)
def _web_host(host: str) -> str:
    """The normalised form of a non-bracketed URL host (ValueError if unusable)."""
    if _is_ip(host):
        return ipaddress.ip_address(host).compressed
    return _strip_www(to_ascii_host(host))


# The common case: lower-case scheme and ASCII host, no userinfo, port or characters that
# urlsplit() would drop. It gives exactly what the general path gives, without urlsplit.
_PLAIN_URL = re.compile(r"(https?)://([a-z0-9._-]+)([/?#][^\t\n\r]*)?\Z")


def _normalize_plain(match: re.Match[str]) -> tuple[str, str]:
    scheme, host, rest = match.groups()
    host_out = _web_host(host)
    path, _, query = (rest or "").split("#", 1)[0].partition("?")
    query = _clean_query(query) if query else ""
    url = f"{scheme}://{host_out}{path or '/'}"
    return (f"{url}?{query}" if query else url), host_out


def normalize_url_host(url: str) -> tuple[str, str]:
    """`(normalize_url(url), url_host(normalize_url(url)))`, faster than calling both."""
    match = _PLAIN_URL.match(url.strip())
    if match:
        return _normalize_plain(match)
    normalized = normalize_url(url)
    return normalized, url_host(normalized)


def normalize_url(url: str) -> str:
    """Canonical form of a result URL (ValueError if it has no usable host).

    https when no scheme, lower-case punycode host without `www.`, no userinfo, no default
    port, no fragment, no tracking parameters; the path is kept ("/" when empty).
    """
    url = url.strip()
    match = _PLAIN_URL.match(url)
    if match:
        return _normalize_plain(match)[0]
    if url.startswith("//"):
        url = "https:" + url
    elif not _SCHEME.match(url):
        if _OTHER_SCHEME.match(url):
            raise ValueError(f"not a web URL: {url!r}")
        url = "https://" + url
    parts: SplitResult = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"not a web URL: {url!r}")
    # netloc = [userinfo@]host[:port]; the host is after the LAST "@".
    hostport = parts.netloc.rsplit("@", 1)[-1]
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"bad IPv6 literal in {url!r}")
        host, rest = hostport[1 : end], hostport[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
        host_out = f"[{ipaddress.ip_address(host).compressed}]"
    else:
        host, _, port_text = hostport.partition(":")
        host_out = _web_host(host)
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port in {url!r}")
        port = int(port_text)
    netloc = host_out if port in (None, DEFAULT_PORTS[scheme]) else f"{host_out}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", _clean_query(parts.query), ""))


def url_host(normalized_url: str) -> str:
    """The host (no port) of a URL from normalize_url()."""
    return urlsplit(normalized_url).hostname or ""


@functools.lru_cache(maxsize=65536)
def registrable_domain(host: str) -> str | None:
    """eTLD+1 of a host in punycode (`msk.brand.ru` → `brand.ru`, `brand.msk.ru` stays);
    None for IP literals, bare public suffixes, single labels and invalid hosts."""
    host = (host or "").strip().lower()
    host = host.rsplit("@", 1)[-1]
    if host.startswith("["):
        return None  # IPv6 literal
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    elif host.count(":") > 1:
        return None  # bare IPv6
    host = host.rstrip(".")
    if not host or _is_ip(host):
        return None
    try:
        ascii_host = to_ascii_host(host)
    except ValueError:
        return None
    return _registrable(ascii_host)


@functools.lru_cache(maxsize=65536)
def _registrable(ascii_host: str) -> str | None:
    if "." not in ascii_host:
        return None
    return _psl().privatesuffix(ascii_host)


def homepage_url(domain: str, seen_url: str | None = None) -> str:
    """`https://<domain>/`, or http when the result itself was served over plain http."""
    scheme = "http" if seen_url and seen_url.lower().startswith("http://") else "https"
    return f"{scheme}://{domain}/"


def display_domain(domain: str) -> str:
    """The Unicode form of a punycode domain, for people (`xn--e1aybc.xn--p1ai` → `тест.рф`)."""
    if "xn--" not in domain:
        return domain
    try:
        return idna.decode(domain)
    except idna.IDNAError:
        return domain
