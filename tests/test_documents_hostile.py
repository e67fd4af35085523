"""Hostile text in documents and workbooks: a service's name cannot break out of the dossier's
style element or make WeasyPrint read a local file; a workbook part renamed away from ``.xml``
is checked like the others."""
from __future__ import annotations

import io
import zipfile

import pytest

from monitor.ingest.bounds import InputFileError


def test_css_string_keeps_a_name_inside_the_string_and_the_style_element():
    from monitor.dialogue.pdf import page_css

    css = page_css('SPSTI X</style><a rel=attachment href=file:///etc/hostname>x</a><style>"\\\n')
    assert "</style>" not in css and "<a" not in css and "file:" not in css
    assert "SPSTI X" in css


def test_weasyprint_fetches_nothing_from_the_documents(tmp_path):
    pytest.importorskip("weasyprint")
    from monitor.dialogue.pdf import html_to_pdf

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT-42")
    pdf = html_to_pdf(f'<html><body><p>x</p><a rel="attachment" href="file://{secret}">pièce</a>'
                      f'<img src="file://{secret}"></body></html>')
    assert pdf[:5] == b"%PDF-"
    assert b"/EmbeddedFile" not in pdf


def _workbook_with_renamed_sheet(dtd: bool) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["service_id", "period", "indicator", "value"])
    ws.append(["12345678901234", "2025-01", "physician_fte", 3.5])
    raw = io.BytesIO()
    wb.save(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            name = info.filename
            if name == "xl/worksheets/sheet1.xml":
                name = "xl/worksheets/sheet1.bin"
                if dtd:
                    data = b'<!DOCTYPE worksheet [<!ENTITY a "AAAA">]>' + data
            data = data.replace(b"worksheets/sheet1.xml", b"worksheets/sheet1.bin")
            zout.writestr(name, data)
    return out.getvalue()


def test_a_sheet_renamed_away_from_xml_is_still_scanned_for_a_dtd(tmp_path):
    from monitor.config.env import InputLimits
    from monitor.ingest.bounds import check_xlsx

    bomb = tmp_path / "renamed.xlsx"
    bomb.write_bytes(_workbook_with_renamed_sheet(dtd=True))
    with pytest.raises(InputFileError, match="DTD"):
        check_xlsx(bomb, InputLimits())
    plain = tmp_path / "plain.xlsx"
    plain.write_bytes(_workbook_with_renamed_sheet(dtd=False))
    check_xlsx(plain, InputLimits())            # a renamed but harmless part passes
