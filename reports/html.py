"""Static HTML pieces: the page shell and formatting. Every text that reaches a page goes through ``esc``
(model output, task text, paths, model names); pages carry a Content-Security-Policy that allows no
script and no network, so even a missed escape could not run or fetch anything."""

from __future__ import annotations

import html
import math
import re
import zlib
from typing import Any

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #1b1b1b;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #d6d6d6; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
td.best { background: #e3f6e3; font-weight: 600; }
tr.paper td { color: #666; background: #fafafa; font-style: italic; }
.ci { color: #777; font-size: 11px; white-space: nowrap; }
.note { background: #fff6d6; border: 1px solid #e9d27a; padding: .4em .8em; margin: .5em 0; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; } .plots svg { max-width: 100%; height: auto; }
pre { white-space: pre-wrap; word-break: break-word; margin: .2em 0; font-size: 12.5px;
      background: #f7f7f7; padding: .35em .6em; border-radius: 3px; }
.episode { border: 1px solid #ccc; border-radius: 4px; padding: .3em 1em 1em; margin: 1.2em 0; }
.turn { border-left: 3px solid #bbb; margin: .6em 0; padding-left: .8em; }
.who { font-size: 11px; font-weight: 600; color: #555; text-transform: uppercase; }
.agent pre { background: #eef4ff; } .invalid { color: #a40000; font-weight: 600; }
.meta { color: #555; font-size: 12px; } nav { margin: 1em 0; }
"""


def esc(value: Any) -> str:
    """HTML-escaped text (quotes too: safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def num(value: Any, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def with_ci(value: float, low: float, high: float, spec: str = ".3g") -> str:
    """``value`` and, when there is one, its interval in small grey text."""
    text = esc(num(value, spec))
    if isinstance(low, float) and not math.isnan(low):
        text += f" <span class='ci'>[{esc(num(low, spec))}, {esc(num(high, spec))}]</span>"
    return text


def slug(text: str) -> str:
    """A file name for any text: readable part plus a checksum, so different texts never collide."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "x"
    return f"{readable}-{zlib.crc32(text.encode()):08x}"


def table(headers: list[str], rows: list[list[str]], left: int = 1, cls: str = "") -> str:
    """A table of already-escaped cells; the first ``left`` columns are left-aligned."""
    head = "".join(f"<th class='l'>{h}</th>" if i < left else f"<th>{h}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(
            cell
            if cell.startswith("<td")
            else (f"<td class='l'>{cell}</td>" if i < left else f"<td>{cell}</td>")
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
