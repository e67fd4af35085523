"""PDF documents from HTML with WeasyPrint, in the look of the State's design system (DSFR):
Marianne when installed, else a plain sans-serif; blue France #000091; sober tables."""
from __future__ import annotations

from html import escape

CSS = """
@page { size: A4; margin: 16mm 15mm 18mm 15mm;
  @bottom-left { content: "__FOOTER__"; font-family: Marianne, Arial, "Liberation Sans", "DejaVu Sans", sans-serif;
                 font-size: 7.5pt; color: #666; }
  @bottom-right { content: "Page " counter(page) " / " counter(pages);
                  font-family: Marianne, Arial, "Liberation Sans", "DejaVu Sans", sans-serif; font-size: 7.5pt; color: #666; } }
html { font-family: Marianne, Arial, "Liberation Sans", "DejaVu Sans", sans-serif; font-size: 9.5pt; color: #161616; }
body { margin: 0; }
.bandeau { border-top: 4px solid #000091; padding-top: 6px; margin-bottom: 10px; overflow: hidden; }
.bloc-marque { float: left; font-weight: bold; font-size: 8pt; line-height: 1.15; text-transform: uppercase; width: 60mm; }
.bloc-marque .devise { font-weight: normal; font-style: italic; text-transform: none; font-size: 7pt; }
.entete-droite { float: right; text-align: right; font-size: 8pt; color: #3a3a3a; }
h1 { color: #000091; font-size: 17pt; margin: 8px 0 2px 0; }
h2 { color: #000091; font-size: 12.5pt; border-bottom: 1px solid #000091; padding-bottom: 2px; margin: 14px 0 6px 0; }
h3 { font-size: 10pt; margin: 8px 0 3px 0; }
p.sous-titre { color: #3a3a3a; margin: 0 0 10px 0; }
.encadre { background: #f5f5fe; border-left: 4px solid #000091; padding: 6px 10px; margin: 6px 0; }
.encadre li { margin: 2px 0; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px 0; font-size: 8.5pt; }
th { background: #e3e3fd; color: #000091; text-align: left; padding: 3px 5px; font-weight: bold; }
td { border-bottom: 1px solid #dddddd; padding: 3px 5px; vertical-align: top; }
td.num, th.num { text-align: right; white-space: nowrap; }
.saut { page-break-before: always; }
.graphe { display: inline-block; width: 49%; vertical-align: top; page-break-inside: avoid; margin-bottom: 6px; }
.graphe table { font-size: 7.5pt; margin-top: 0; }
.graphe h3 { font-size: 8.5pt; margin: 4px 0 0 0; color: #3a3a3a; }
.ko { color: #ce0500; font-weight: bold; }
.ok { color: #18753c; font-weight: bold; }
.note { color: #666; font-size: 8pt; }
"""


def css_string(text: str) -> str:
    """``text`` as the inside of a CSS string: every character but letters, digits and spaces
    written as a 6-digit CSS escape, so that no quote, backslash, ``<`` (``</style>``) or line
    break from a service's name can leave the string or the style element."""
    return "".join(c if (c.isalnum() and c.isascii()) or c == " " else f"\\{ord(c):06X}" for c in text)


def page_css(footer: str) -> str:
    return CSS.replace("__FOOTER__", css_string(footer))


def banner(right: str) -> str:
    return ('<div class="bandeau"><div class="bloc-marque">République<br>française'
            '<div class="devise">Liberté<br>Égalité<br>Fraternité</div></div>'
            f'<div class="entete-droite">{right}</div></div>')


def table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), raw: set[int] = frozenset(),
          empty: str | None = None) -> str:
    """An HTML table; cells are escaped except the columns in ``raw`` (already HTML). Without
    rows and with ``empty``, that sentence instead."""
    if not rows and empty is not None:
        return f"<p>{escape(empty)}</p>"
    head = "".join(f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            text = str(c) if i in raw else escape(str(c))
            cells.append(f'<td class="num">{text}</td>' if i in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_to_pdf(html: str) -> bytes:
    """Render a complete HTML document to PDF bytes (WeasyPrint)."""
    import logging

    from weasyprint import HTML

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    from weasyprint.urls import URLFetcher

    # The documents are self-contained (inline SVG, system fonts): WeasyPrint may fetch nothing
    # but data: URLs, so that no text that reached the HTML can read a local file (file://)
    # or call a server.
    return HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"})).write_pdf()
