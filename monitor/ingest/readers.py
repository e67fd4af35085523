"""Read a CSV or XLSX exchange file into a DataFrame of strings.

Handles UTF-8 with or without BOM and Windows-1252, `,` or `;` separators, and tells a
person clearly why a file cannot be read. Rows with the wrong number of fields are not
dropped: they are returned separately so the caller can quarantine them.
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


class InputFileError(ValueError):
    """The file cannot be read at all (exit status 2); the message is for a person."""


@dataclass
class RawTable:
    frame: pd.DataFrame            # all cells as str, columns normalised to lower case
    row_numbers: pd.Series         # line number in the file (1 = header) of each frame row
    bad_rows: list[tuple[int, list[str]]] = field(default_factory=list)  # (line, cells)
    checksum: str = ""
    encoding: str = ""
    separator: str = ""


def checksum_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _decode(data: bytes, name: str) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            line = data[3:3 + exc.start].count(b"\n") + 1
            raise InputFileError(
                f"{name} : encodage incohérent : le fichier s'annonce en UTF-8 (BOM) mais la ligne "
                f"{line} contient des octets non UTF-8 ; réenregistrez-le en CSV UTF-8") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise InputFileError(f"{name} : fichier UTF-16 illisible ; réenregistrez-le en CSV UTF-8") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data:          # the whole file: a NUL is never part of a text export
        return True
    head = data[:8192]
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls > max(8, len(head) // 50)


def _normalise_columns(columns) -> list[str]:
    return [str(c).replace("\ufeff", "").strip().lower() for c in columns]


def read_table(path: str | Path, required: list[str]) -> RawTable:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path} : fichier introuvable")
    if path.is_dir():
        raise InputFileError(f"{path} : c'est un dossier, pas un fichier")
    data = path.read_bytes()
    if not data.strip():
        raise InputFileError(f"{path.name} : fichier vide")
    digest = checksum_bytes(data)
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise InputFileError(f"{path.name} : classeur Excel 97-2003 (.xls) non pris en charge ; "
                             f"enregistrez-le en XLSX ou en CSV")
    if data[:4] == b"PK\x03\x04" or path.suffix.lower() in (".xlsx", ".xlsm"):
        table = _read_xlsx(data, path)
    else:
        table = _read_csv(data, path)
    table.checksum = digest
    names = [c for c in table.frame.columns if c]          # unnamed (empty) columns are ignored
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise InputFileError(f"{path.name} : colonne(s) en double dans l'en-tête : {', '.join(dupes)}")
    missing = [c for c in required if c not in table.frame.columns]
    if missing:
        raise InputFileError(
            f"{path.name} : colonne(s) obligatoire(s) absente(s) : {', '.join(missing)} "
            f"(colonnes trouvées : {', '.join(table.frame.columns) or 'aucune'})")
    return table


def _xlsx_cell(value) -> str:
    """Text of a cell as a person typed it: formulas keep their ``=`` text, dates are ISO."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "VRAI" if value else "FAUX"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time(0) else value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    text = getattr(value, "text", None)      # openpyxl ArrayFormula / DataTableFormula
    return str(text if text is not None else value)


def _read_xlsx(data: bytes, path: Path) -> RawTable:
    """First sheet; formula cells are read as their formula text (``=...``), never evaluated,
    so that they are quarantined like a formula typed in a CSV."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
        try:
            ws = wb.worksheets[0]
            rows = [[_xlsx_cell(v) for v in r] for r in ws.iter_rows(values_only=True)]
        finally:
            wb.close()
    except Exception as exc:  # openpyxl raises many kinds; all mean "not a readable workbook"
        raise InputFileError(f"{path.name} : classeur XLSX illisible ({type(exc).__name__})") from exc
    if not rows:
        raise InputFileError(f"{path.name} : classeur vide (aucune ligne d'en-tête)")
    header = rows[0]
    while header and not header[-1].strip():
        header = header[:-1]
    columns = _normalise_columns(header)
    width = len(columns)
    good, lines, bad = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if all(not c.strip() for c in row):
            continue
        row = (row + [""] * width)[:max(width, len(row))]
        if len(row) > width and any(c.strip() for c in row[width:]):
            bad.append((line, row))
        else:
            good.append(row[:width])
            lines.append(line)
    frame = pd.DataFrame(good, columns=columns, dtype=object) if good else pd.DataFrame(columns=columns)
    return RawTable(frame=frame, row_numbers=pd.Series(lines, dtype="int64"), bad_rows=bad,
                    encoding="xlsx", separator="")


def _read_csv(data: bytes, path: Path) -> RawTable:
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    if not utf16 and _looks_binary(data):
        raise InputFileError(f"{path.name} : fichier binaire ou corrompu, ce n'est ni un CSV ni un XLSX")
    text, encoding = _decode(data, path.name)
    if utf16 and "\x00" in text:
        raise InputFileError(f"{path.name} : fichier binaire ou corrompu, ce n'est ni un CSV ni un XLSX")
    first_line = text.split("\n", 1)[0]
    sep = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = next(reader)
    except StopIteration:
        raise InputFileError(f"{path.name} : fichier vide") from None
    except csv.Error as exc:
        raise InputFileError(f"{path.name} : CSV illisible ({exc})") from exc
    columns = _normalise_columns(header)
    width = len(columns)
    good: list[list[str]] = []
    lines: list[int] = []
    bad: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) == width:
                good.append(row)
                lines.append(line)
            elif len(row) > width and all(not c.strip() for c in row[width:]):
                good.append(row[:width])     # trailing empty cells from spreadsheets
                lines.append(line)
            else:
                bad.append((line, row))
    except csv.Error as exc:
        raise InputFileError(f"{path.name} : CSV illisible à la ligne {reader.line_num} ({exc})") from exc
    frame = pd.DataFrame(good, columns=columns, dtype=object) if good else pd.DataFrame(columns=columns)
    return RawTable(frame=frame, row_numbers=pd.Series(lines, dtype="int64"), bad_rows=bad,
                    encoding=encoding, separator=sep)


_FORMULA = r"^\s*(?:[=@]|[+\-](?![0-9.,\s]*$))"


def _on_unique(values: pd.Series, func) -> pd.Series:
    """Apply a vectorised ``func`` (Series -> Series) to the distinct values only.

    Exchange files repeat the same service ids, periods, indicators and counts many times:
    working on the distinct values and mapping back is much faster on large files."""
    codes, uniques = pd.factorize(values.astype(str), use_na_sentinel=False)
    if len(uniques) * 2 > len(values):
        return func(values.astype(str))
    res = func(pd.Series(uniques.to_numpy(dtype=object), dtype=object))
    return pd.Series(res.to_numpy()[codes], index=values.index, name=values.name)


def _formula_cells(values: pd.Series) -> pd.Series:
    return values.astype(str).str.contains(_FORMULA, regex=True, na=False).astype(bool)


def formula_mask(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Rows where one of the columns holds a spreadsheet formula (=, @, or +/- not a number)."""
    mask = pd.Series(False, index=frame.index)
    for col in columns:
        if col in frame.columns:
            mask |= _on_unique(frame[col], _formula_cells).astype(bool)
    return mask


_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"


def _parse_numbers(values: pd.Series) -> pd.Series:
    s = values.astype(str).str.strip()
    s = s.str.replace(r"[\s\u00a0\u202f]", "", regex=True)
    comma = s.str.contains(",", regex=False)
    dot = s.str.contains(".", regex=False)
    last_comma = s.str.rfind(",")
    last_dot = s.str.rfind(".")
    # Both separators: the last one is the decimal mark ("1.234,5" French, "1,234.5" English).
    english = comma & dot & (last_dot > last_comma)
    s = s.where(~english, s.str.replace(",", "", regex=False))
    # Otherwise a comma is a decimal comma (0,84) and dots before it are thousands (1.234,5).
    french = comma & ~english
    s = s.where(~french, s.str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
    s = s.where(s.str.fullmatch(_NUMBER).fillna(False).astype(bool), None)
    out = pd.to_numeric(s, errors="coerce").astype(float)
    return out.where(np.isfinite(out))


def parse_numbers(values: pd.Series) -> pd.Series:
    """Parse French or English decimals ('0,84', '1 234,5', '1.234,5', '1,234.5', '0.84');
    NaN when unparsable, empty or not finite."""
    return _on_unique(values, _parse_numbers).astype(float)
