"""A self-contained HTML page describing the API, rendered from the OpenAPI document.

No scripts and no external resources: it works offline and behind strict proxies.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

_CODE = re.compile(r"`([^`]+)`")
_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:62rem;padding:1rem 2rem;color:#1d2330}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ccd}h3{margin-top:1.6rem}
code{background:#f1f3f7;padding:0 .25em;border-radius:3px;font-size:.92em}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem}
th,td{border:1px solid #d7dbe3;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f6fa}.method{font-weight:700;color:#fff;background:#2c6e49;padding:.05rem .45rem;
border-radius:3px;margin-right:.4rem}.req{color:#a33;font-weight:600}nav ul{columns:2}
.muted{color:#5a6272}
"""


def render_docs(document: Mapping[str, Any]) -> str:
    info = document["info"]
    schemas: Mapping[str, Any] = document.get("components", {}).get("schemas", {})
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{_e(info['title'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(info['title'])} <span class='muted'>{_e(info['version'])}</span></h1>",
        f"<p>{_text(info.get('description', ''))}</p>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>",
        _contents(document),
        _authentication(document),
        "<h2 id='endpoints'>Endpoints</h2>",
    ]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            parts.append(_operation(path, method, operation))
    parts.append("<h2 id='problems'>Problem types</h2>")
    parts.append(
        "<p>Errors are <code>application/problem+json</code> bodies of schema "
        "<a href='#schema-Problem'>Problem</a>. Plain HTTP errors (404, 405, 413, 500) "
        "have type <code>about:blank</code>; these have their own:</p>"
    )
    for uri, text in document.get("x-problem-types", {}).items():
        anchor = uri.split("#", 1)[-1]
        parts.append(f"<h3 id='{_e(anchor)}'><code>{_e(uri)}</code></h3><p>{_text(text)}</p>")
    parts.append("<h2 id='schemas'>Schemas</h2>")
    for name, schema in schemas.items():
        parts.append(_schema(name, schema))
    parts.append("</body></html>")
    return "".join(parts)


def _contents(document: Mapping[str, Any]) -> str:
    items = [
        f"<li><a href='#{_op_anchor(path, method)}'>{_e(method.upper())} {_e(path)}</a>"
        f" <span class='muted'>{_e(op.get('summary', ''))}</span></li>"
        for path, operations in document["paths"].items()
        for method, op in operations.items()
    ]
    return f"<nav><ul>{''.join(items)}</ul></nav>"


def _authentication(document: Mapping[str, Any]) -> str:
    schemes: Mapping[str, Any] = document.get("components", {}).get("securitySchemes", {})
    if not schemes:
        return ""
    parts = ["<h2 id='authentication'>Authentication</h2>"]
    for name, scheme in schemes.items():
        kind = (
            f"{scheme.get('type', '')} {scheme.get('scheme', '')} {scheme.get('bearerFormat', '')}"
        )
        parts.append(
            f"<p><code>{_e(name)}</code> ({_e(kind.strip())}): "
            f"{_text(scheme.get('description', ''))}</p>"
        )
    return "".join(parts)


def _operation(path: str, method: str, operation: Mapping[str, Any]) -> str:
    parts = [
        f"<h3 id='{_op_anchor(path, method)}'><span class='method'>{_e(method.upper())}</span>"
        f"<code>{_e(path)}</code></h3>",
        f"<p><strong>{_text(operation.get('summary', ''))}</strong></p>",
    ]
    requirements = operation.get("security")
    if requirements:
        scopes = sorted(
            {s for requirement in requirements for v in requirement.values() for s in v}
        )
        listed = ", ".join(f"<code>{_e(scope)}</code>" for scope in scopes)
        parts.append(
            f"<p>Needs a <a href='#authentication'>bearer token</a> with scope {listed}.</p>"
        )
    elif requirements is not None:
        parts.append("<p class='muted'>Open: no token needed.</p>")
    if operation.get("description"):
        parts.append(f"<p>{_text(operation['description'])}</p>")
    parameters = operation.get("parameters", [])
    if parameters:
        parts.append(
            "<table><tr><th>Parameter</th><th>In</th><th>Type</th><th>Rules</th>"
            "<th>Description</th></tr>"
        )
        for parameter in parameters:
            schema = parameter.get("schema", {})
            required = " <span class='req'>required</span>" if parameter.get("required") else ""
            parts.append(
                f"<tr><td><code>{_e(parameter['name'])}</code>{required}</td>"
                f"<td>{_e(parameter.get('in', 'query'))}</td><td>{_type(schema)}</td><td>{_rules(schema)}</td>"
                f"<td>{_text(parameter.get('description', ''))}</td></tr>"
            )
        parts.append("</table>")
    body = operation.get("requestBody")
    if body:
        for media_type, content in body.get("content", {}).items():
            parts.append(
                f"<p>Request body (<code>{_e(media_type)}</code>): "
                f"{_type(content.get('schema', {}))}. {_text(body.get('description', ''))}</p>"
            )
    parts.append("<table><tr><th>Status</th><th>Media type</th><th>Body</th><th>When</th></tr>")
    for status, response in operation.get("responses", {}).items():
        for media_type, content in response.get("content", {}).items():
            parts.append(
                f"<tr><td>{_e(status)}</td><td><code>{_e(media_type)}</code></td>"
                f"<td>{_type(content.get('schema', {}))}</td>"
                f"<td>{_text(response.get('description', ''))}</td></tr>"
            )
    parts.append("</table>")
    return "".join(parts)


def _schema(name: str, schema: Mapping[str, Any]) -> str:
    parts = [f"<h3 id='schema-{_e(name)}'>{_e(name)}</h3>"]
    if schema.get("description"):
        parts.append(f"<p>{_text(schema['description'])}</p>")
    properties: Mapping[str, Any] = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        parts.append("<table><tr><th>Field</th><th>Type</th><th>Rules</th><th>Meaning</th></tr>")
        for field, prop in properties.items():
            mark = " <span class='req'>required</span>" if field in required else ""
            parts.append(
                f"<tr><td><code>{_e(field)}</code>{mark}</td><td>{_type(prop)}</td>"
                f"<td>{_rules(prop)}</td><td>{_text(prop.get('description', ''))}</td></tr>"
            )
        parts.append("</table>")
    extra = schema.get("additionalProperties")
    if extra not in (None, False):
        parts.append("<p class='muted'>Further members may appear.</p>")
    return "".join(parts)


def _type(schema: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f"<a href='#schema-{_e(name)}'>{_e(name)}</a>"
    if "anyOf" in schema:
        return " | ".join(_type(branch) for branch in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{_e(str(v))}</code>" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, Mapping) and values:
            return f"object of {_type(values)}"
        return "object"
    if kind is None:
        return "any"
    text = _e(str(kind))
    if "format" in schema:
        text += f" ({_e(str(schema['format']))})"
    return text


def _rules(schema: Mapping[str, Any]) -> str:
    rules = []
    for key, label in (
        ("minimum", "&ge;"),
        ("maximum", "&le;"),
        ("minLength", "length &ge;"),
        ("maxLength", "length &le;"),
    ):
        if key in schema:
            rules.append(f"{label} {_e(str(schema[key]))}")
    if "pattern" in schema:
        rules.append(f"pattern <code>{_e(str(schema['pattern']))}</code>")
    if "default" in schema:
        rules.append(f"default <code>{_e(_literal(schema['default']))}</code>")
    return "<br>".join(rules)


def _literal(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


def _op_anchor(path: str, method: str) -> str:
    return "op-" + method.lower() + re.sub(r"[^A-Za-z0-9]+", "-", path).rstrip("-")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _text(text: str) -> str:
    """Escape, then render `code` spans as the descriptions are written in them."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", _e(text))
