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
        if not data or data.isspace():        # (no stripped copy of a large file)
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
    if not utf16:
        if encoding == "cp1252":
            buf = text.encode("utf-8")
        else:
            buf = data[3:] if encoding == "utf-8-sig" else data
            del text                      # decoded again only if the fast path gives up
        del data
        table = _parse_csv_fast(buf, sep, encoding, path, limits)
        if table is not None:
            return table
        if encoding != "cp1252":
            text = buf.decode("utf-8")
        del buf
    else:
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


# --------------------------------------------------------------------------- fast CSV path
#
# ``_parse_csv`` walks the file row by row in Python: exact, but about 1 µs a cell. Most
# exchange files hold no quote character at all, and then every physical line is one record
# and a cell is exactly the text between two separators: the layout of every line (where it
# starts and ends, how many separators, whether anything but blanks is on it) can be found
# with numpy over the bytes, and the cells parsed by Arrow's CSV reader. ``_parse_csv_fast``
# does that, and gives up (returns None, the caller then runs ``_parse_csv``) on anything
# whose exact treatment belongs to the row-by-row reader: quotes, UTF-16, a line longer than a
# cell may be, too many columns or blank lines (whose message names the first offending line).

_LAYOUT_CHUNK = 16 * 1024 * 1024
# bytes that are "something" on a line: ASCII, neither a separator nor a character that
# ``str.strip`` removes (\t \n \v \f \r, \x1c-\x1f, space). Bytes >= 0x80 count as blank here
# (a line of only those is checked exactly in Python: U+00A0 or U+2003 are blanks to strip).
_ASCII_BLANK = np.zeros(256, dtype=bool)
_ASCII_BLANK[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_ASCII_BLANK[128:] = True


@dataclass
class _Layout:
    starts: np.ndarray        # first byte of each line
    ends: np.ndarray          # its terminator (CR, LF or CRLF) or the end of the data
    nexts: np.ndarray         # first byte after the terminator
    seps: np.ndarray          # separators on the line
    solid: np.ndarray         # bytes other than blanks and separators (see _ASCII_BLANK)


def _layout(buf: bytes, sep: int) -> _Layout:
    """Lines of ``buf`` as ``csv.reader`` over ``io.StringIO(text, newline="")`` sees them (LF,
    CRLF or a lone CR end a line), computed in chunks cut after an LF so that the temporary
    arrays stay small whatever the file size. Counts per line come from the sorted positions
    of separators and blanks (a few per line), never from a pass per line."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    n = len(arr)
    blank_or_sep = _ASCII_BLANK.copy()
    blank_or_sep[sep] = True
    parts: list[tuple[np.ndarray, ...]] = []
    a = 0
    while a < n:
        b = min(n, a + _LAYOUT_CHUNK)
        if b < n:
            cut = buf.rfind(b"\n", a, b)
            b = cut + 1 if cut >= a else (buf.find(b"\n", b) + 1 or n)
        c = arr[a:b]
        if buf.find(b"\r", a, b) < 0:
            ends = np.flatnonzero(c == 10)
            nexts = ends + 1
        else:
            lf, cr = c == 10, c == 13
            is_end = lf | cr
            is_end[1:] &= ~(lf[1:] & cr[:-1])       # the LF of a CRLF is not a line of its own
            ends = np.flatnonzero(is_end)
            crlf = np.zeros(len(ends), dtype=bool)
            inside = ends + 1 < len(c)
            crlf[inside] = cr[ends[inside]] & lf[ends[inside] + 1]
            nexts = ends + 1 + crlf
        if not len(nexts) or nexts[-1] < len(c):    # the last line has no terminator
            ends = np.append(ends, len(c))
            nexts = np.append(nexts, len(c))
        starts = np.concatenate(([0], nexts[:-1]))
        sep_at = np.flatnonzero(c == sep)
        seps = np.searchsorted(sep_at, ends) - np.searchsorted(sep_at, starts)
        blank_at = np.flatnonzero(blank_or_sep[c])
        solid = (nexts - starts) - (np.searchsorted(blank_at, nexts) - np.searchsorted(blank_at, starts))
        parts.append((starts + a, ends + a, nexts + a, seps, solid))
        a = b
    return _Layout(*(np.concatenate(col) for col in zip(*parts)))


def _blank(cells: list[str]) -> bool:
    return all(not c.strip() for c in cells)


def _parse_csv_fast(buf: bytes, sep: str, encoding: str, path: Path, limits: InputLimits) -> RawTable | None:
    """The same table as ``_parse_csv`` for a file without quotes (``buf``: its UTF-8 bytes,
    without BOM), or None when the row-by-row reader must decide."""
    if b'"' in buf or not buf:
        return None
    sep_b = sep.encode()
    lay = _layout(buf, sep_b[0])
    n_lines = len(lay.starts)
    lengths = lay.ends - lay.starts
    if int(lengths.max()) > limits.max_cell_chars or int(lay.seps.max()) + 1 > limits.max_columns:
        return None
    if lay.solid[0] == 0:                            # a blank header line: let csv tell
        return None
    header = buf[lay.starts[0]:lay.ends[0]].decode("utf-8").split(sep)
    columns = _normalise_columns(header)
    width = len(columns)

    def cells(i: int) -> list[str]:
        return buf[lay.starts[i]:lay.ends[i]].decode("utf-8").split(sep)

    # data lines (index >= 1): blank, of the header's width, wider, or narrower
    maybe_blank = np.flatnonzero(lay.solid[1:] == 0) + 1
    if len(maybe_blank) > limits.max_empty_rows:
        return None
    blank = np.zeros(n_lines, dtype=bool)
    blank[maybe_blank] = [lengths[i] == 0 or _blank(cells(i)) for i in maybe_blank.tolist()]
    if int(blank.sum()) > limits.max_empty_rows:
        return None
    fields = lay.seps + 1
    exact = ~blank & (fields == width)
    exact[0] = False
    wider = np.flatnonzero(~blank & (fields > width))
    wider = wider[wider > 0]
    trimmed: dict[int, bytes] = {}                  # line index -> its first ``width`` cells
    bad: list[tuple[int, list[str]]] = []
    for i in wider.tolist():
        row = cells(i)
        if _blank(row[width:]):
            trimmed[i] = sep_b.join(buf[lay.starts[i]:lay.ends[i]].split(sep_b)[:width]) + b"\n"
        else:
            bad.append((i + 1, row))
    narrower = np.flatnonzero(~blank & (fields < width))
    bad += [(i + 1, cells(i)) for i in narrower[narrower > 0].tolist()]
    bad.sort()
    keep = exact.copy()
    keep[list(trimmed)] = True
    kept = np.flatnonzero(keep)
    if len(kept) == n_lines - 1 and not trimmed:
        data = memoryview(buf)[int(lay.nexts[0]):]
    else:
        # runs of consecutive whole lines, and the trimmed lines, in file order
        pieces: list = []
        whole = np.flatnonzero(exact)
        if len(whole):
            breaks = np.flatnonzero(np.diff(whole) != 1)
            firsts = np.concatenate(([whole[0]], whole[breaks + 1]))
            lasts = np.concatenate((whole[breaks], [whole[-1]]))
            view = memoryview(buf)
            pieces = [(int(f), view[int(lay.starts[f]):int(lay.nexts[l])])
                      for f, l in zip(firsts.tolist(), lasts.tolist())]
        pieces += list(trimmed.items())
        pieces.sort(key=lambda p: p[0])
        # only the file's last line can lack a terminator, and it comes last
        data = b"".join(p for _, p in pieces)
    frame = _arrow_frame(data, sep, width, len(kept)) if len(kept) else None
    if len(kept) and frame is None:
        return None
    if frame is None:
        frame = pd.DataFrame(columns=columns)
    else:
        frame.columns = columns
    return RawTable(frame=frame, row_numbers=pd.Series(kept + 1, dtype="int64"), bad_rows=bad,
                    encoding=encoding, separator=sep)


def _arrow_frame(data, sep: str, width: int, expected_rows: int) -> pd.DataFrame | None:
    """Cells of lines that all have ``width`` fields and no quote, as text (None if Arrow
    disagrees with the layout: the caller then falls back to the row-by-row reader)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:            # an optional speed-up (pandas >= 3 uses it too): csv decides
        return None
    names = [f"c{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names, block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=False, double_quote=False,
                                              escape_char=False, newlines_in_values=False,
                                              ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowException):
        return None
    if table.num_rows != expected_rows:
        return None
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    # the text dtype the row-by-row reader's cells get from ``astype(str)`` (Arrow-backed with
    # pandas >= 3, so no copy; Python strings with older pandas)
    target = pd.Series([""], dtype=object).astype(str).dtype
    for c in frame.columns:
        if frame[c].dtype != target:
            frame[c] = frame[c].astype(object).astype(str)
    return frame


_FORMULA = r"^\s*(?:[=@]|[+\-](?![0-9.,\s]*$))"


def _on_unique(values: pd.Series, func) -> pd.Series:
    """Apply a vectorised ``func`` (Series -> Series) to the distinct values only.

    Exchange files repeat the same service ids, periods, indicators and counts many times:
    working on the distinct values and mapping back is much faster on large files."""
    codes, uniques = pd.factorize(values.astype(str), use_na_sentinel=False)
    if len(uniques) * 2 > len(values):
        return func(values.astype(str))
    res = func(pd.Series(uniques.to_numpy(dtype=object), dtype=object))
    if isinstance(res.dtype, pd.StringDtype):
        # text stays text (an Arrow take), instead of millions of Python strings
        return pd.Series(res.array.take(codes), index=values.index, name=values.name)
    return pd.Series(res.to_numpy()[codes], index=values.index, name=values.name)


def _formula_cells(values: pd.Series) -> pd.Series:
    return values.astype(str).str.contains(_FORMULA, regex=True, na=False).astype(bool)


def formula_mask(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Rows where one of the columns holds a spreadsheet formula (=, @, or +/- not a number)."""
    mask = pd.Series(False, index=frame.index)
    for col in columns:
        if col in frame.columns:
            values = frame[col].astype(str)
            # a formula holds one of = @ + -: the exact pattern (a look-ahead, which runs in
            # Python) is tried only on the few cells that do
            maybe = np.zeros(len(values), dtype=bool)
            for ch in "=@+-":
                maybe |= values.str.contains(ch, regex=False, na=False).astype(bool).to_numpy()
            if maybe.any():
                hits = _on_unique(values[maybe], _formula_cells).astype(bool)
                mask[hits.index[hits.to_numpy()]] = True
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


def _plain_floats(text: pd.Series) -> np.ndarray:
    """Floats of cells that all match ``_NUMBER``: Arrow's cast when the text is Arrow-backed
    (correctly rounded, as ``float()`` and ``pd.to_numeric`` are; several times faster)."""
    try:
        import pyarrow as pa

        return pa.array(text.array).cast(pa.float64()).to_numpy(zero_copy_only=False)
    except Exception:  # not Arrow-backed, or a form Arrow refuses: pandas decides
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)


def parse_numbers(values: pd.Series) -> pd.Series:
    """Parse French or English decimals ('0,84', '1 234,5', '1.234,5', '1,234.5', '0.84');
    NaN when unparsable, empty or not finite."""
    text = values.astype(str)
    # most cells are already plain numbers ("0.84", "12"): ``_parse_numbers`` leaves them as they
    # are, so they are converted at once; the others (decimal comma, blanks, text) go through it
    plain = text.str.fullmatch(_NUMBER).fillna(False).astype(bool).to_numpy()
    if not plain.any():
        return _on_unique(values, _parse_numbers).astype(float)
    out = pd.Series(np.nan, index=values.index, name=values.name, dtype=float)
    parsed = _plain_floats(text[plain])
    out[plain] = np.where(np.isfinite(parsed), parsed, np.nan)
    if not plain.all():
        out[~plain] = _on_unique(values[~plain], _parse_numbers).astype(float).to_numpy()
    return out
