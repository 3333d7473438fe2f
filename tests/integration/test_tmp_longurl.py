from tests.integration.test_serp_ingest import *  # noqa

def test_long_url(session):
    docs = [{"url": "https://long-url.ru/p?" + "&".join(f"k{i}=" + "абвгд%20x" * 20 for i in range(40)), "title": "Long"},
            {"url": "https://ok-site.ru/", "title": "OK"}]
    query = make_query(session)
    op = make_operation(session, query, render_serp(docs))
    r = ingest_operation(session, op.id, get_settings())
    session.commit()
    print(len(docs[0]["url"]), r)
