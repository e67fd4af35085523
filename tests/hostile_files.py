"""Hostile spreadsheets and CSVs, written cheaply (XML and zip entries directly, streamed)."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterable

_CT = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
       '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
       '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
       '<Default Extension="xml" ContentType="application/xml"/>'
       '<Override PartName="/xl/workbook.xml" '
       'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
       '<Override PartName="/xl/worksheets/sheet1.xml" '
       'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
       '{strings_ct}</Types>')
_STRINGS_CT = ('<Override PartName="/xl/sharedStrings.xml" '
               'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>')
_RELS = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
         '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
         'officeDocument" Target="xl/workbook.xml"/></Relationships>')
_WB = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
       '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
       'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
       '<sheets><sheet name="Feuil1" sheetId="1" r:id="rId1"/></sheets></workbook>')
_WB_RELS = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'worksheet" Target="worksheets/sheet1.xml"/>{strings_rel}</Relationships>')
_STRINGS_REL = ('<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                'relationships/sharedStrings" Target="sharedStrings.xml"/>')
SHEET_HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
              '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
              '<dimension ref="{dimension}"/><sheetData>')
SHEET_TAIL = '</sheetData></worksheet>'
HEADER = ["service_id", "period", "indicator", "value"]


def col_name(n: int) -> str:
    s = ""
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


def inline_row(r: int, values: list[str]) -> str:
    cells = "".join(f'<c r="{col_name(i)}{r}" t="inlineStr"><is><t>{v}</t></is></c>'
                    for i, v in enumerate(values, start=1))
    return f'<row r="{r}">{cells}</row>'


def write_xlsx(path: Path, rows: Iterable[str], dimension: str = "A1:D2",
               shared_strings: Iterable[bytes] | None = None, level: int = 6) -> Path:
    """An XLSX whose first sheet's XML is ``rows`` (strings of ``<row>`` elements), streamed into
    the zip; ``shared_strings``, if given, are the chunks of xl/sharedStrings.xml."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as z:
        has_strings = shared_strings is not None
        z.writestr("[Content_Types].xml", _CT.format(strings_ct=_STRINGS_CT if has_strings else ""))
        z.writestr("_rels/.rels", _RELS)
        z.writestr("xl/workbook.xml", _WB)
        z.writestr("xl/_rels/workbook.xml.rels", _WB_RELS.format(strings_rel=_STRINGS_REL if has_strings else ""))
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=False) as f:
            f.write(SHEET_HEAD.format(dimension=dimension).encode())
            buf = []
            for row in rows:
                buf.append(row)
                if len(buf) >= 4096:
                    f.write("".join(buf).encode())
                    buf = []
            f.write("".join(buf).encode())
            f.write(SHEET_TAIL.encode())
        if has_strings:
            with z.open("xl/sharedStrings.xml", "w", force_zip64=True) as f:
                for chunk in shared_strings:
                    f.write(chunk)
    return path
