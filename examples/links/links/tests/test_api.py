"""The links app's own tests: run them with ``storekeeper test links``.

Each test gets a fresh copy of primary_db as it looks right after its
first-time initialization (an empty links table) and calls the API through
the real portal; the real store is never touched.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text

from links.app import App
from links.model import Link
from storekeeper.testing import persistent_store, portal_client

primary_db = persistent_store("links", "primary_db")
client = portal_client(scope="module")  # one portal for the module; a fresh store copy per test

LINKS = "/apps/links/links"
PROBLEM_JSON = "application/problem+json"
DROP_TABLE = "https://x.example/'); DROP TABLE links;--"


def count_links(primary_db: Any) -> int:
    with primary_db.sessionmaker() as session:
        return int(session.scalar(select(func.count()).select_from(Link)))


def stored_urls(primary_db: Any) -> list[str]:
    with primary_db.sessionmaker() as session:
        return list(session.scalars(select(Link.url).order_by(Link.id)))


def table_exists(primary_db: Any) -> bool:
    with primary_db.engine.connect() as conn:
        return inspect(conn).has_table("links")


def post(client: Any, url: Any, **kwargs: Any) -> Any:
    return client.post(LINKS, json={"url": url}, headers=client.token_headers(), **kwargs)


def problem(response: Any, status: int, *needles: str) -> dict[str, Any]:
    """Assert ``response`` is a problem document with ``status`` mentioning ``needles``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    doc = response.json()
    assert doc["status"] == status and doc["detail"]
    assert "Traceback" not in response.text
    for needle in needles:
        assert needle in f"{doc['detail']} {doc.get('hint', '')}", doc
    return doc  # type: ignore[no-any-return]


def test_the_app_uses_the_test_copy(primary_db):
    assert App.get_persistent_store_database("primary_db").url.database == primary_db.database
    assert primary_db.database != "links_primary_db"


def test_an_empty_store_lists_no_links(primary_db, client):
    response = client.get(LINKS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"links": [], "next": None}


def test_a_created_link_is_returned_stored_and_listed_first(primary_db, client):
    first = post(client, "https://example.com/one")
    second = post(client, "http://example.org/two?x=1#frag")
    assert first.status_code == second.status_code == 201
    link = second.json()
    assert set(link) == {"id", "url", "created_at"}
    assert link["url"] == "http://example.org/two?x=1#frag"
    assert link["id"] > first.json()["id"]
    assert link["created_at"].endswith("+00:00")
    assert second.headers["location"] == f"{LINKS}/{link['id']}"
    assert client.get(second.headers["location"]).json() == link
    assert [item["url"] for item in client.get(LINKS).json()["links"]] == [
        "http://example.org/two?x=1#frag",
        "https://example.com/one",
    ]
    assert stored_urls(primary_db) == ["https://example.com/one", "http://example.org/two?x=1#frag"]


def test_pages_follow_the_cursor_newest_first_without_repeats(primary_db, client):
    ids = [post(client, f"https://example.com/{n}").json()["id"] for n in range(5)]
    page = client.get(LINKS, params={"limit": 2}).json()
    assert [link["id"] for link in page["links"]] == ids[:2:-1] == [ids[4], ids[3]]
    post(client, "https://example.com/new")  # added between pages: later pages do not shift
    seen = [link["id"] for link in page["links"]]
    while page["next"] is not None:
        page = client.get(LINKS, params={"limit": 2, "cursor": page["next"]}).json()
        seen += [link["id"] for link in page["links"]]
    assert seen == ids[::-1]


def test_the_last_full_page_has_no_next(primary_db, client):
    for n in range(3):
        post(client, f"https://example.com/{n}")
    page = client.get(LINKS, params={"limit": 3}).json()
    assert len(page["links"]) == 3
    assert page["next"] is None


def test_the_default_page_holds_50_links(primary_db, client):
    with primary_db.sessionmaker() as session:
        session.add_all(Link(url=f"https://example.com/{n}") for n in range(60))
        session.commit()
    page = client.get(LINKS).json()
    assert len(page["links"]) == 50
    assert len(client.get(LINKS, params={"cursor": page["next"]}).json()["links"]) == 10


def test_a_missing_link_is_404(primary_db, client):
    problem(client.get(f"{LINKS}/12345"), 404, "12345")
    problem(client.get(f"{LINKS}/abc"), 404)
    problem(client.get(f"{LINKS}/99999999999999999999999"), 404)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "javascript:alert(1)",
        "mailto:someone@example.com",
        "https://",
        "https:///path-only",
        "example.com/no-scheme",
        "",
        " https://example.com/",
        "https://example.com/\nX-Injected: 1",
        "https://example.com/\x00",
        "https://example.com:99999/",
        "http://[::1/",
        "https://example.com/" + "a" * 2030,
        123,
        None,
        ["https://example.com/"],
        {"href": "https://example.com/"},
    ],
)
def test_a_bad_url_is_refused_with_400_and_nothing_is_stored(primary_db, client, url):
    problem(post(client, url), 400, "https")
    assert count_links(primary_db) == 0


def test_the_longest_url_is_accepted(primary_db, client):
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    assert post(client, url).status_code == 201
    assert stored_urls(primary_db) == [url]


def test_extra_members_are_ignored(primary_db, client):
    response = client.post(
        LINKS, json={"url": "https://example.com/", "id": 999, "admin": True}, headers=client.token_headers()
    )
    assert response.status_code == 201
    assert response.json()["id"] != 999


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({}, 400),  # no body
        ({"content": b"null", "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}, 400),
        ({"json": {"link": "https://example.com/"}}, 400),  # no url member
        ({"content": b'{"url": "https://example.com/"', "headers": {"Content-Type": "application/json"}}, 422),
        ({"content": b"\xff\xfe not utf-8", "headers": {"Content-Type": "application/json"}}, 422),
        ({"content": b'{"url": "https://example.com/\\ud800"}', "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"https://example.com/", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"content": b'{"url": "https://example.com/"}'}, 415),  # JSON, but no content type
        ({"data": {"url": "https://example.com/"}}, 415),  # a form
        ({"files": {"url": ("u.txt", b"https://example.com/")}}, 415),  # multipart
    ],
)
def test_a_body_that_is_not_a_json_object_with_a_url_is_a_4xx_problem(primary_db, client, kwargs, status):
    headers = {**client.token_headers(), **kwargs.pop("headers", {})}
    response = client.post(LINKS, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    # Titles are the portal's, by status, written for a user (not an error class's docstring).
    titles = {400: "Invalid request", 415: "Unsupported content type", 422: "Invalid input"}
    assert response.json()["title"] == titles[status]
    assert count_links(primary_db) == 0


def test_writing_needs_a_token_reading_does_not(primary_db, client):
    doc = problem(client.post(LINKS, json={"url": "https://example.com/"}), 401)
    assert "/api/v1/auth/token" in doc["hint"]
    bad = client.post(LINKS, json={"url": "https://example.com/"}, headers={"Authorization": "Bearer nope"})
    problem(bad, 401)
    assert count_links(primary_db) == 0
    assert post(client, "https://example.com/").status_code == 201
    assert client.get(LINKS).status_code == 200  # no token


def test_viewers_may_save_links_too(primary_db, client):
    response = client.post(LINKS, json={"url": "https://example.com/"}, headers=client.token_headers("viewer"))
    assert response.status_code == 201


def test_sql_in_a_url_is_stored_as_plain_text(primary_db, client):
    payloads = [
        DROP_TABLE,
        "https://x.example/?q=' OR 1=1 --",
        'https://x.example/"; DELETE FROM links; --',
        "https://x.example/$1$$; TRUNCATE links; $$",
    ]
    created = [post(client, url) for url in payloads]
    assert [r.status_code for r in created] == [201] * len(payloads)
    assert [r.json()["url"] for r in created] == payloads
    assert table_exists(primary_db)
    assert stored_urls(primary_db) == payloads
    assert client.get(f"{LINKS}/{created[0].json()['id']}").json()["url"] == DROP_TABLE


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"cursor": "' OR 1=1 --"}, 400),
        ({"cursor": "1; DROP TABLE links"}, 400),
        ({"cursor": "0"}, 400),
        ({"cursor": "-1"}, 400),
        ({"cursor": "1e3"}, 400),
        ({"cursor": "99999999999999999999"}, 400),
        ({"limit": "' OR 1=1 --"}, 422),
        ({"limit": "1; DROP TABLE links"}, 422),
        ({"limit": "0"}, 422),
        ({"limit": "201"}, 422),
        ({"limit": "-5"}, 422),
    ],
)
def test_bad_cursors_and_limits_are_refused_and_change_nothing(primary_db, client, params, status):
    for n in range(3):
        post(client, f"https://example.com/{n}")
    problem(client.get(LINKS, params=params), status)
    assert table_exists(primary_db)
    assert count_links(primary_db) == 3


def test_sql_in_a_link_id_is_404(primary_db, client):
    post(client, "https://example.com/")
    problem(client.get(f"{LINKS}/1 OR 1=1"), 404)
    problem(client.get(f"{LINKS}/1;DROP TABLE links"), 404)
    assert count_links(primary_db) == 1


def test_keyset_pages_use_the_primary_key_index(primary_db):
    with primary_db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO links (url) SELECT 'https://example.com/' || n FROM generate_series(1, 20000) n")
        )
        conn.execute(text("ANALYZE links"))
        plan = "\n".join(
            conn.scalars(
                text("EXPLAIN SELECT id, url, created_at FROM links WHERE id < 10000 ORDER BY id DESC LIMIT 51")
            )
        )
    assert "Index Scan Backward using links_pkey" in plan, plan
