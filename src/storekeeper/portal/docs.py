"""The API docs page at ``/docs``, rendered on the server from the OpenAPI schema.

FastAPI's own page loads Swagger UI from a CDN, which a portal with no
internet access cannot reach; this page needs nothing but the portal. The
machine-readable schema stays at ``/openapi.json``. When the documentation
site has been built (``make docs``, into ``site/`` of a source checkout), the
portal serves it at ``/docs/site/`` and this page links to its REST pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, select_autoescape

METHODS = ("get", "post", "put", "patch", "delete")
#: Where ``make docs`` builds the documentation site in a source checkout (an installed wheel has none).
SITE_DIR = Path(__file__).resolve().parents[3] / "site"
#: Where the portal serves that site, when it is built.
SITE_PATH = "/docs/site"
SITE_REST_PAGE = "reference/rest/index.html"

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ info.title }} API</title>
<style>
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { background:#111827; color:#fff; padding:1.2rem 2rem; }
header h1 { margin:0; font-size:1.4rem; } header p { margin:.3rem 0 0; color:#cbd2d9; }
.wrap { display:flex; gap:2rem; padding:1.5rem 2rem; align-items:flex-start; }
nav { position:sticky; top:1rem; min-width:14rem; background:#fff; border:1px solid var(--line); border-radius:8px; padding:1rem; }
nav ul { list-style:none; margin:0; padding:0; } nav li { margin:.15rem 0; } nav a { color:var(--accent); text-decoration:none; }
main { flex:1; min-width:0; }
section.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:1rem 1.25rem; margin-bottom:1rem; }
h2 { margin:1.5rem 0 .75rem; font-size:1.2rem; } h3 { margin:0; font-size:1rem; font-family:ui-monospace,monospace; }
.method { display:inline-block; min-width:4.2rem; text-align:center; border-radius:4px; color:#fff; font-size:.8rem; padding:.1rem .4rem; margin-right:.5rem; }
.get{background:#2563eb}.post{background:#16a34a}.put{background:#d97706}.patch{background:#9333ea}.delete{background:#dc2626}
.lock { color:var(--muted); font-size:.85rem; margin-left:.5rem; }
p.desc { color:var(--muted); margin:.4rem 0; white-space:pre-line; }
table { border-collapse:collapse; width:100%; margin:.5rem 0; font-size:.9rem; }
th, td { text-align:left; border-bottom:1px solid var(--line); padding:.3rem .5rem; vertical-align:top; }
th { color:var(--muted); font-weight:600; }
code, pre { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.85rem; }
pre { background:#0f172a; color:#e2e8f0; padding:.75rem 1rem; border-radius:6px; overflow-x:auto; }
.label { font-weight:600; margin-top:.6rem; }
</style>
</head>
<body>
<header>
  <h1>{{ info.title }} API <small>v{{ info.version }}</small></h1>
  <p>{{ info.description }} Machine-readable schema: <a style="color:#93c5fd" href="{{ openapi_url }}">{{ openapi_url }}</a>{% if site_rest %}
  · Guides and this reference with examples: <a style="color:#93c5fd" href="{{ site_rest }}">the documentation site</a>{% endif %}</p>
</header>
<div class="wrap">
<nav aria-label="Contents">
  <ul>
    <li><a href="#authentication">Authentication</a></li>
    <li><a href="#errors">Errors</a></li>
    {% for tag in tags %}<li><a href="#tag-{{ tag.name|replace(' ', '-')|replace(':', '') }}">{{ tag.name }}</a></li>{% endfor %}
    <li><a href="#schemas">Schemas</a></li>
  </ul>
</nav>
<main>
<section class="card" id="authentication">
  <h2>Authentication</h2>
  <p>Trade a username and password for an API token (shown once), then send it with every request:</p>
  <pre>curl -s -X POST {{ base }}/api/v1/auth/token -H 'Content-Type: application/json' \\
     -d '{"username": "admin", "password": "...", "name": "my script"}'
curl -s {{ base }}/api/v1/apps -H 'Authorization: Bearer skt_...'</pre>
  <p>Viewers may read everything but get 403 on every change; admins may do everything.</p>
</section>
<section class="card" id="errors">
  <h2>Errors</h2>
  <p>Every error is a problem document (RFC 9457, <code>application/problem+json</code>) with
  <code>type</code>, <code>title</code>, <code>status</code>, <code>detail</code> (what went wrong, naming the app,
  setting, store or service), <code>hint</code> (how to fix it) and the names involved
  (<code>app</code>, <code>setting</code>, <code>service</code>).</p>
</section>
{% for tag in tags %}
<h2 id="tag-{{ tag.name|replace(' ', '-')|replace(':', '') }}">{{ tag.name }}</h2>
{% for op in tag.operations %}
<section class="card" id="{{ op.id }}">
  <h3><span class="method {{ op.method }}">{{ op.method|upper }}</span>{{ op.path }}{% if op.secured %}<span class="lock">token required</span>{% endif %}</h3>
  {% if op.summary %}<p><strong>{{ op.summary }}</strong></p>{% endif %}
  {% if op.description %}<p class="desc">{{ op.description }}</p>{% endif %}
  {% if op.parameters %}
  <div class="label">Parameters</div>
  <table><tr><th>Name</th><th>In</th><th>Type</th><th>Required</th><th>Description</th></tr>
  {% for p in op.parameters %}<tr><td><code>{{ p.name }}</code></td><td>{{ p.where }}</td><td><code>{{ p.type }}</code></td><td>{{ "yes" if p.required else "no" }}</td><td>{{ p.description }}</td></tr>{% endfor %}
  </table>{% endif %}
  {% if op.body %}<div class="label">Request body</div><p><code>{{ op.body }}</code> (application/json; see <a href="#schema-{{ op.body }}">schema</a>)</p>{% endif %}
  <div class="label">Responses</div>
  <table><tr><th>Status</th><th>Description</th><th>Body</th></tr>
  {% for r in op.responses %}<tr><td>{{ r.status }}</td><td>{{ r.description }}</td><td><code>{{ r.type }}</code></td></tr>{% endfor %}
  </table>
</section>
{% endfor %}
{% endfor %}
<h2 id="schemas">Schemas</h2>
{% for s in schemas %}
<section class="card" id="schema-{{ s.name }}">
  <h3>{{ s.name }}</h3>
  {% if s.description %}<p class="desc">{{ s.description }}</p>{% endif %}
  {% if s.fields %}
  <table><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr>
  {% for f in s.fields %}<tr><td><code>{{ f.name }}</code></td><td><code>{{ f.type }}</code></td><td>{{ "yes" if f.required else "no" }}</td><td>{{ f.description }}</td></tr>{% endfor %}
  </table>{% endif %}
</section>
{% endfor %}
</main>
</div>
</body>
</html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_page = _env.from_string(_TEMPLATE)


def type_name(schema: dict[str, Any]) -> str:
    """Render a JSON schema as a short type: ``list[AppOut]``, ``string | null``, ``one of: a, b``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " | ".join(type_name(s) for s in schema[key])
    if "enum" in schema:
        return "one of: " + ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{type_name(schema.get('items', {}))}]"
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"dict[string, {type_name(schema['additionalProperties'])}]"
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _body_type(content: dict[str, Any]) -> str:
    for media in content.values():
        if "schema" in media:
            return type_name(media["schema"])
    return "-"


def _context(spec: dict[str, Any]) -> dict[str, Any]:
    order = {t["name"]: i for i, t in enumerate(spec.get("tags", []))}
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = [
                {
                    "name": p["name"],
                    "where": p["in"],
                    "required": p.get("required", False),
                    "type": type_name(p.get("schema", {})),
                    "description": p.get("description", ""),
                }
                for p in op.get("parameters", [])
            ]
            body = op.get("requestBody", {}).get("content", {})
            all_responses = sorted(op.get("responses", {}).items())
            responses = [
                {"status": status, "description": r.get("description", ""), "type": _body_type(r.get("content", {}))}
                for status, r in all_responses
                if not status.startswith(("4", "5"))
            ]
            errors = [status for status, _ in all_responses if status.startswith(("4", "5"))]
            if errors:
                responses.append(
                    {"status": ", ".join(errors), "description": "Problem document (see Errors)", "type": "Problem"}
                )
            entry = {
                "id": op.get("operationId", f"{method}-{path}"),
                "method": method,
                "path": path,
                "summary": op.get("summary", ""),
                "description": op.get("description", ""),
                "secured": bool(op.get("security")),
                "parameters": params,
                "body": _body_type(body) if body else None,
                "responses": responses,
            }
            by_tag.setdefault((op.get("tags") or ["other"])[0], []).append(entry)
    tags = [
        {"name": name, "operations": ops}
        for name, ops in sorted(by_tag.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))
    ]
    schemas = []
    for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        fields = [
            {
                "name": field,
                "type": type_name(sub),
                "required": field in required,
                "description": sub.get("description", "") + (" (write-only)" if sub.get("writeOnly") else ""),
            }
            for field, sub in schema.get("properties", {}).items()
        ]
        schemas.append({"name": name, "description": schema.get("description", ""), "fields": fields})
    return {"info": spec.get("info", {}), "tags": tags, "schemas": schemas}


def install_docs(app: FastAPI, path: str = "/docs", site_dir: Path | None = None) -> None:
    """Serve the offline API docs page at ``path``, and the documentation site when it is built."""
    site = site_dir or SITE_DIR
    site_rest = None
    if (site / SITE_REST_PAGE).is_file():
        app.mount(SITE_PATH, StaticFiles(directory=site, html=True), name="docs-site")
        site_rest = f"{SITE_PATH}/{SITE_REST_PAGE.removesuffix('index.html')}"

    @app.get(path, include_in_schema=False, response_class=HTMLResponse)
    def docs(request: Request) -> HTMLResponse:
        base = str(request.base_url).rstrip("/")
        html = _page.render(
            **_context(app.openapi()), base=base, openapi_url=app.openapi_url or "/openapi.json", site_rest=site_rest
        )
        return HTMLResponse(html)
