"""Self-contained HTML pages: styles inline, pictures embedded as base64 PNG, no network needed."""
from __future__ import annotations

import base64
import html
from typing import Iterable, Sequence

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#1d2430;line-height:1.45;padding:0 16px}
h1{font-size:1.55em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #d8dde6;
padding-bottom:.2em}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #d8dde6;padding:4px 9px;text-align:right}th{background:#f1f4f8}
td:first-child,th:first-child{text-align:left}tr.mean td{font-weight:600;background:#fafbfd}
.meta{color:#5a6473;font-size:.9em}.note{background:#fff7e0;border:1px solid #ecd58a;padding:8px 12px;
border-radius:4px}.sim{background:#ffe9e6;border:1px solid #e49a8f;padding:8px 12px;border-radius:4px;font-weight:600}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin:0 4px 0 10px;vertical-align:-1px}
img{max-width:100%;height:auto}.fig{margin:.8em 0}.sig{color:#b3261e;font-weight:600}
.scroll{max-height:420px;overflow:auto;display:inline-block}
"""


def esc(value) -> str:
    return html.escape(str(value))


def image(data: bytes, alt: str, mime: str = "image/png") -> str:
    """An embedded picture (PNG figures; photo-like galleries embed smaller as image/jpeg)."""
    b64 = base64.b64encode(data).decode("ascii")
    return f'<div class="fig"><img alt="{esc(alt)}" src="data:{mime};base64,{b64}"></div>'


def table(header: Sequence[str], rows: Iterable[Sequence], classes: Sequence[str | None] | None = None,
          scroll: bool = False) -> str:
    """Cells are escaped; `classes` gives an optional CSS class per row."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = classes[i] if classes and i < len(classes) and classes[i] else None
        attr = f' class="{css}"' if css else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{out}</div>' if scroll else out


def legend(names_colors: Iterable[tuple[str, Sequence[int]]]) -> str:
    return "".join(f'<span class="swatch" style="background:rgb({c[0]},{c[1]},{c[2]})"></span>{esc(n)}'
                   for n, c in names_colors)


def page(title: str, parts: Iterable[str]) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
