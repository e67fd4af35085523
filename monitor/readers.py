"""Read a CSV or XLSX exchange file into a DataFrame of strings.

Handles UTF-8 with or without BOM and Windows-1252, `,` or `;` separators, and tells a
person clearly why a file cannot be read. Rows with the wrong number of fields are not
dropped: they are returned separately so the caller can quarantine them.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

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
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def _looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        return True
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
    if data[:4] == b"PK\x03\x04" or path.suffix.lower() in (".xlsx", ".xlsm"):
        table = _read_xlsx(data, path)
    else:
        table = _read_csv(data, path)
    table.checksum = digest
    missing = [c for c in required if c not in table.frame.columns]
    if missing:
        raise InputFileError(
            f"{path.name} : colonne(s) obligatoire(s) absente(s) : {', '.join(missing)} "
            f"(colonnes trouvées : {', '.join(table.frame.columns) or 'aucune'})")
    return table


def _read_xlsx(data: bytes, path: Path) -> RawTable:
    try:
        frame = pd.read_excel(io.BytesIO(data), dtype=str, engine="openpyxl", header=0)
    except Exception as exc:  # openpyxl raises many kinds; all mean "not a readable workbook"
        raise InputFileError(f"{path.name} : classeur XLSX illisible ({type(exc).__name__})") from exc
    frame.columns = _normalise_columns(frame.columns)
    frame = frame.dropna(how="all").fillna("")
    rows = pd.Series(frame.index.to_numpy() + 2, index=range(len(frame)))
    frame = frame.reset_index(drop=True).astype(str)
    return RawTable(frame=frame, row_numbers=rows, encoding="xlsx", separator="")


def _read_csv(data: bytes, path: Path) -> RawTable:
    if _looks_binary(data):
        raise InputFileError(f"{path.name} : fichier binaire, ce n'est ni un CSV ni un XLSX")
    text, encoding = _decode(data, path.name)
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


_FORMULA = r"^\s*(?:[=@]|[+\-](?![\d.,\s]*$))"


def formula_mask(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Rows where one of the columns holds a spreadsheet formula (=, @, or +/- not a number)."""
    mask = pd.Series(False, index=frame.index)
    for col in columns:
        if col in frame.columns:
            mask |= frame[col].astype(str).str.contains(_FORMULA, regex=True, na=False)
    return mask


def parse_numbers(values: pd.Series) -> pd.Series:
    """Parse French or English decimals ('0,84', '1 234,5', '0.84'); NaN when unparsable/empty."""
    s = values.astype(str).str.strip()
    s = s.str.replace(r"[\s\u00a0\u202f]", "", regex=True)
    # decimal comma with no dot: 0,84 -> 0.84 ; thousands dot + decimal comma: 1.234,5
    comma = s.str.contains(",", regex=False)
    s = s.where(~comma, s.str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
    s = s.where(s.str.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"), None)
    return pd.to_numeric(s, errors="coerce").astype(float)
