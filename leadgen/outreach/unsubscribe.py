"""The one-click unsubscribe endpoint (RFC 8058) behind UNSUBSCRIBE_URL.

Mail clients POST `List-Unsubscribe=One-Click` to `<UNSUBSCRIBE_URL>/<token>` without cookies;
the HMAC token alone names the recipient. A GET (a person clicking the link in the body, or a
link scanner prefetching it) only shows a confirmation button: nothing is unsubscribed on GET.
Serve it with `leadgen unsubscribe serve` behind the HTTPS reverse proxy of your domain.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from leadgen.config import Settings
from leadgen.db import session_scope
from leadgen.outreach import optout

log = logging.getLogger(__name__)

MAX_BODY = 4096
StartResponse = Callable[[str, list[tuple[str, str]]], Any]

CONFIRM_PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Отписка</title></head>
<body><p>Больше не получать писем на {email}?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Отписаться</button></form></body></html>"""
DONE_PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Отписка</title></head>
<body><p>Готово: писем на {email} больше не будет.</p></body></html>"""


def make_app(settings: Settings) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI application for the unsubscribe endpoint."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        token = environ.get("PATH_INFO", "").strip("/").rsplit("/", 1)[-1]
        email = optout.verify_token(token, settings.unsubscribe_secret) if token else None
        if email is None:
            return _reply(start_response, "404 Not Found", "unknown or damaged link\n", "text/plain")
        if method == "GET":
            return _reply(start_response, "200 OK", CONFIRM_PAGE.format(email=html.escape(email)))
        if method != "POST":
            return _reply(start_response, "405 Method Not Allowed", "use POST\n", "text/plain")
        form = _read_form(environ)
        if form.get("List-Unsubscribe") != ["One-Click"]:
            return _reply(start_response, "400 Bad Request",
                          "expected List-Unsubscribe=One-Click\n", "text/plain")
        with session_scope() as session:
            result = optout.add(session, email, source="one-click",
                                reason="List-Unsubscribe one-click")
        log.info("unsubscribed %s (new: %s, companies: %s)", email, result.created,
                 result.companies)
        return _reply(start_response, "200 OK", DONE_PAGE.format(email=html.escape(email)))

    return app


def _read_form(environ: dict[str, Any]) -> dict[str, list[str]]:
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_BODY)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    return parse_qs(body.decode("utf-8", "replace"))


def _reply(start_response: StartResponse, status: str, text: str,
           content_type: str = "text/html") -> list[bytes]:
    payload = text.encode("utf-8")
    start_response(status, [("Content-Type", f"{content_type}; charset=utf-8"),
                            ("Content-Length", str(len(payload))),
                            ("Cache-Control", "no-store")])
    return [payload]
