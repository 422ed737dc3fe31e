"""The peer for bench/links_load.py: the seed tutorial's Flask + Flask-SQLAlchemy ``/links`` API.

Written the way the tutorial ("Flask n' iOS Part 3: Data Persistence with
PostgreSQL") has it: one model, one route, ``Link.query.all()`` for GET (every
row, unordered, no paging) and ``db.session.add`` + ``commit`` for POST, no
authentication. Two departures, both to compare like with like: rows are
returned as objects with ``id``, ``url`` and ``created_at`` (the tutorial
returns a list of URL strings), and POST answers 201 with the new link (the
tutorial answers with every URL in the table again, which would make each POST
cost as much as a GET of the whole table).

The driver is psycopg 3 (``postgresql+psycopg://``), as storekeeper uses.

Run::

    FLASK_LINKS_DATABASE_URL=postgresql+psycopg://USER:PASS@HOST:PORT/flask_links \
        python bench/flask_links/app.py init-db            # create the table (the tutorial's db.create_all())
    FLASK_LINKS_DATABASE_URL=... gunicorn -w 2 -k sync --chdir bench/flask_links app:app
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
    "FLASK_LINKS_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/flask_links"
)
db = SQLAlchemy(app)


def _now() -> datetime:
    return datetime.now(UTC)


class Link(db.Model):
    __tablename__ = "links"
    id = db.Column(db.Integer, primary_key=True)
    url = db.Column(db.Text, nullable=False)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=_now, server_default=db.func.now())

    def as_json(self) -> dict:
        return {"id": self.id, "url": self.url, "created_at": self.created_at.isoformat()}


@app.route("/links", methods=["GET", "POST"])
def links():
    if request.method == "GET":
        return jsonify({"links": [link.as_json() for link in Link.query.all()]})

    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        return jsonify({"error": 'send JSON like {"url": "https://..."}'}), 400
    link = Link(url=body["url"])
    db.session.add(link)
    db.session.commit()
    return jsonify(link.as_json()), 201


def init_db() -> None:
    """Create the table, once, before the workers start (the tutorial does this from a Python shell)."""
    with app.app_context():
        db.create_all()


if __name__ == "__main__":
    if sys.argv[1:] == ["init-db"]:
        init_db()
    else:
        app.run()
