"""The one-click unsubscribe endpoint: POST with a valid token opts the address out; GET never
does; a forged token is refused."""

from __future__ import annotations

import io

from sqlalchemy import select

from leadgen.config import load_settings
from leadgen.models import Company, OptOut
from leadgen.outreach.optout import unsubscribe_token
from leadgen.outreach.unsubscribe import make_app

SECRET = "s3cret-for-tests"


def call(app, method: str, path: str, body: bytes = b"") -> tuple[str, str]:
    status: list[str] = []
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body)}
    chunks = app(environ, lambda s, headers: status.append(s))
    return status[0], b"".join(chunks).decode()


def test_one_click_post_opts_out_and_get_does_not(session, db_url):
    session.add(Company(domain="romashka.ru", name="Ромашка", homepage_url="https://romashka.ru/",
                        status="contacts_ready"))
    session.commit()
    app = make_app(load_settings(unsubscribe_secret=SECRET))
    token = unsubscribe_token("Info@Romashka.ru", SECRET)

    status, page = call(app, "GET", f"/u/{token}")
    assert status.startswith("200") and "info@romashka.ru" in page and "<form" in page
    assert session.scalars(select(OptOut)).all() == []

    status, _ = call(app, "POST", f"/u/{token}", b"List-Unsubscribe=One-Click")
    assert status.startswith("200")
    session.expire_all()
    entries = session.scalars(select(OptOut)).all()
    assert [(e.kind, e.value, e.source) for e in entries] == [
        ("email", "info@romashka.ru", "one-click")]

    status, _ = call(app, "POST", f"/u/{token}", b"List-Unsubscribe=One-Click")  # again: fine
    assert status.startswith("200")
    assert len(session.scalars(select(OptOut)).all()) == 1


def test_forged_or_incomplete_requests_are_refused(session, db_url):
    app = make_app(load_settings(unsubscribe_secret=SECRET))
    forged = unsubscribe_token("info@romashka.ru", "another-secret")
    assert call(app, "POST", f"/{forged}", b"List-Unsubscribe=One-Click")[0].startswith("404")
    assert call(app, "POST", "/", b"List-Unsubscribe=One-Click")[0].startswith("404")
    token = unsubscribe_token("info@romashka.ru", SECRET)
    assert call(app, "POST", f"/{token}", b"something=else")[0].startswith("400")
    assert call(app, "PUT", f"/{token}")[0].startswith("405")
    assert session.scalars(select(OptOut)).all() == []
