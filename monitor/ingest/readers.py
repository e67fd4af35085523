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
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.config.env import InputLimits, input_limits
from monitor.ingest.bounds import InputFileError, check_file_size, check_xlsx, scan_text

# a well-formed multi-byte UTF-8 sequence (é = C3 A9, ’ = E2 80 99): a Windows-1252 file
# practically never holds one, a UTF-8 file with accents always does
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


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


def checksum_file(path: str | Path) -> str:
    """SHA-256 of a file read in chunks (a large file is never held in memory for it); a file
    over the size limit gets a cheap identity instead (:func:`monitor.ingest.bounds.file_checksum`)."""
    from monitor.ingest.bounds import file_checksum

    return file_checksum(Path(path), input_limits().max_file_bytes)


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
    except UnicodeDecodeError as exc:
        if _UTF8_MULTIBYTE.search(data):
            # mostly UTF-8 with a few Windows-1252 lines: reading it all as cp1252 would store
            # « SantÃ© »; reading it as UTF-8 would lose the bad lines' accents
            line = data[:exc.start].count(b"\n") + 1
            raise InputFileError(
                f"{name} : encodage mixte : le fichier est en UTF-8 mais la ligne {line} n'est pas en UTF-8 "
                f"(probablement Windows-1252) ; réenregistrez tout le fichier en CSV UTF-8") from None
        return data.decode("cp1252", errors="replace"), "cp1252"


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data:          # the whole file: a NUL is never part of a text export
        return True
    head = data[:8192]
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls > max(8, len(head) // 50)


def _normalise_columns(columns) -> list[str]:
    return [str(c).replace("\ufeff", "").strip().lower() for c in columns]


def read_table(path: str | Path, required: list[str], limits: InputLimits | None = None) -> RawTable:
    """Read a CSV or XLSX file, refusing it early (:mod:`monitor.ingest.bounds`) when it breaks
    a limit: size, lines, line or cell length, columns, empty rows, unzipped size."""
    path = Path(path)
    limits = limits or input_limits()
    if not path.exists():
        raise InputFileError(f"{path} : fichier introuvable")
    if path.is_dir():
        raise InputFileError(f"{path} : c'est un dossier, pas un fichier")
    if check_file_size(path, limits) == 0:
        raise InputFileError(f"{path.name} : fichier vide")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise InputFileError(f"{path.name} : classeur Excel 97-2003 (.xls) non pris en charge ; "
                             f"enregistrez-le en XLSX ou en CSV")
    if head[:4] == b"PK\x03\x04" or path.suffix.lower() in (".xlsx", ".xlsm"):
        check_xlsx(path, limits)
        digest = checksum_file(path)
        table = _read_xlsx(path, limits)
    else:
        digest = scan_text(path, limits, utf16=head.startswith((b"\xff\xfe", b"\xfe\xff")))
        data = path.read_bytes()
        if not data.strip():
            raise InputFileError(f"{path.name} : fichier vide")
        table = _read_csv(data, path, limits)
        del data
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


def _xlsx_rows(path: Path, limits: InputLimits):
    """Yield (line, cells as text) of the first sheet's rows that hold something.

    The sheet's declared dimension is not trusted: rows are streamed from its XML as they
    are (openpyxl's read-only parser, without the padding ``iter_rows`` adds up to the
    declared size), so a workbook declaring A1:XFD1048576 costs only the cells it holds.
    Columns, cell lengths and empty rows are checked as the rows come."""
    import openpyxl
    from openpyxl.worksheet._reader import WorkSheetParser

    wb = openpyxl.load_workbook(path, read_only=True, data_only=False)
    try:
        ws = wb.worksheets[0]
        empty = 0
        previous = 0
        with ws._get_source() as src:
            parser = WorkSheetParser(src, wb.shared_strings, data_only=False, epoch=wb.epoch,
                                     date_formats=wb._date_formats, timedelta_formats=wb._timedelta_formats)
            for line, cells in parser.parse():
                empty += max(0, line - previous - 1)
                previous = line
                if line > limits.max_rows:
                    raise InputFileError(f"{path.name} : plus de {limits.max_rows:,} lignes (limite ; variable "
                                         f"SPSTI_MONITOR_MAX_ROWS)".replace(",", "\u202f"))
                values: dict[int, str] = {}
                for cell in cells:
                    col = cell["column"]
                    if col > limits.max_columns:
                        raise InputFileError(
                            f"{path.name} : ligne {line} : une cellule en colonne {col}, au-delà de la limite de "
                            f"{limits.max_columns} colonnes (variable SPSTI_MONITOR_MAX_COLUMNS)")
                    text = _xlsx_cell(cell["value"])
                    if len(text) > limits.max_cell_chars:
                        raise InputFileError(
                            f"{path.name} : ligne {line} : cellule de plus de {limits.max_cell_chars:,} caractères "
                            f"(limite ; variable SPSTI_MONITOR_MAX_CELL_CHARS)".replace(",", "\u202f"))
                    if text:
                        values[col] = text
                if not any(v.strip() for v in values.values()):
                    empty += 1
                if empty > limits.max_empty_rows:
                    raise InputFileError(
                        f"{path.name} : plus de {limits.max_empty_rows:,} lignes vides (limite ; variable "
                        f"SPSTI_MONITOR_MAX_EMPTY_ROWS)".replace(",", "\u202f"))
                if values:
                    width = max(values)
                    yield line, [values.get(c, "") for c in range(1, width + 1)]
    finally:
        wb.close()


def _read_xlsx(path: Path, limits: InputLimits) -> RawTable:
    """First sheet; formula cells are read as their formula text (``=...``), never evaluated,
    so that they are quarantined like a formula typed in a CSV."""
    try:
        rows = list(_xlsx_rows(path, limits))
    except InputFileError:
        raise
    except Exception as exc:  # openpyxl raises many kinds; all mean "not a readable workbook"
        raise InputFileError(f"{path.name} : classeur XLSX illisible ({type(exc).__name__})") from exc
    if not rows:
        raise InputFileError(f"{path.name} : classeur vide (aucune ligne d'en-tête)")
    header = rows[0][1]
    while header and not header[-1].strip():
        header = header[:-1]
    columns = _normalise_columns(header)
    width = len(columns)
    good, lines, bad = [], [], []
    for line, row in rows[1:]:
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


def _read_csv(data: bytes, path: Path, limits: InputLimits) -> RawTable:
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    if not utf16 and _looks_binary(data):
        raise InputFileError(f"{path.name} : fichier binaire ou corrompu, ce n'est ni un CSV ni un XLSX")
    text, encoding = _decode(data, path.name)
    if utf16 and "\x00" in text:
        raise InputFileError(f"{path.name} : fichier binaire ou corrompu, ce n'est ni un CSV ni un XLSX")
    first_line = text[:text.find("\n")] if "\n" in text else text
    sep = ";" if first_line.count(";") > first_line.count(",") else ","
    del data
    previous_limit = csv.field_size_limit(limits.max_cell_chars)
    try:
        return _parse_csv(text, sep, encoding, path, limits)
    finally:
        csv.field_size_limit(previous_limit)


def _csv_error(path: Path, line: int, exc: csv.Error, limits: InputLimits) -> InputFileError:
    if "field larger than field limit" in str(exc):
        return InputFileError(f"{path.name} : ligne {line} : cellule de plus de {limits.max_cell_chars:,} caractères "
                              f"(limite ; variable SPSTI_MONITOR_MAX_CELL_CHARS)".replace(",", "\u202f"))
    return InputFileError(f"{path.name} : CSV illisible à la ligne {line} ({exc})")


def _too_wide(path: Path, line: int, n: int, limits: InputLimits) -> InputFileError:
    return InputFileError(f"{path.name} : ligne {line} : {n} colonnes, au-delà de la limite de "
                          f"{limits.max_columns} (variable SPSTI_MONITOR_MAX_COLUMNS)")


def _parse_csv(text: str, sep: str, encoding: str, path: Path, limits: InputLimits) -> RawTable:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = next(reader)
    except StopIteration:
        raise InputFileError(f"{path.name} : fichier vide") from None
    except csv.Error as exc:
        raise _csv_error(path, 1, exc, limits) from None
    if len(header) > limits.max_columns:
        raise _too_wide(path, 1, len(header), limits)
    columns = _normalise_columns(header)
    width = len(columns)
    good: list[list[str]] = []
    lines: list[int] = []
    bad: list[tuple[int, list[str]]] = []
    empty = 0
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                empty += 1
                if empty > limits.max_empty_rows:
                    raise InputFileError(
                        f"{path.name} : plus de {limits.max_empty_rows:,} lignes vides (limite ; variable "
                        f"SPSTI_MONITOR_MAX_EMPTY_ROWS)".replace(",", "\u202f"))
                continue
            if len(row) > limits.max_columns:
                raise _too_wide(path, line, len(row), limits)
            if len(row) == width:
                good.append(row)
                lines.append(line)
            elif len(row) > width and all(not c.strip() for c in row[width:]):
                good.append(row[:width])     # trailing empty cells from spreadsheets
                lines.append(line)
            else:
                bad.append((line, row))
    except csv.Error as exc:
        raise _csv_error(path, reader.line_num, exc, limits) from None
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
