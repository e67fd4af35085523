"""Bounds checked on a file before it is parsed, in bounded memory and time.

A hostile file (a 4.7 KB workbook declaring A1:XFD1048576, 1 GiB of whitespace zipped into
1 MB, a million empty rows, one 900 MB cell) must cost little to refuse. Everything here
streams the file in chunks and decides from counts: lines, the longest line, NUL bytes, the
zip directory (entries, declared sizes: :mod:`zipfile` never inflates an entry beyond its
declared size) and, once inflated chunk by chunk, the longest text between two XML tags.
Each refusal is one French sentence (:class:`InputFileError`, exit status 2).
"""
from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from monitor.config.env import InputLimits

CHUNK = 16 * 1024 * 1024
MAX_ZIP_ENTRIES = 10_000
# parts of a workbook other than its sheets and shared strings (styles, theme, properties…):
# a few kilobytes in real files, and parsed into many objects, so kept small
MAX_AUX_PART_BYTES = 16 * 1024 * 1024


class InputFileError(ValueError):
    """The file cannot be read at all (exit status 2); the message is for a person."""


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} Mo".replace(",", "\u202f")


def _count(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def check_file_size(path: Path, limits: InputLimits) -> int:
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise InputFileError(f"{path.name} : fichier trop volumineux ({_mb(size)}, limite {_mb(limits.max_file_bytes)} ; "
                             f"variable SPSTI_MONITOR_MAX_FILE_MB)")
    return size


def file_checksum(path: Path, max_bytes: int | None = None) -> str:
    """SHA-256 of a file, read in chunks. A file above ``max_bytes`` (refused unread) is
    identified by its size, first and last mebibyte instead, so that refusing it stays cheap
    and the drop folder still recognises it at the next pull."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        if max_bytes is not None and size > max_bytes:
            h.update(b"oversize:%d:" % size)
            h.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            h.update(f.read(1 << 20))
            return h.hexdigest()
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def max_line_bytes(limits: InputLimits) -> int:
    """The longest acceptable line: one cell at the limit (4 bytes a character at most in
    UTF-8) plus every other column of ordinary width."""
    return limits.max_cell_chars * 4 + limits.max_columns * 256


def scan_text(path: Path, limits: InputLimits, utf16: bool) -> str:
    """Stream a text file once: its checksum, and refuse it on NUL bytes (unless UTF-16), too
    many lines or a line too long, before anything is decoded or parsed."""
    h = hashlib.sha256()
    longest_allowed = max_line_bytes(limits) * (2 if utf16 else 1)
    lines = 0            # newlines seen so far
    current = 0          # length of the line under way at the end of the previous chunk
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            if not utf16 and b"\x00" in chunk:
                raise InputFileError(f"{path.name} : fichier binaire ou corrompu, ce n'est ni un CSV ni un XLSX")
            arr = np.frombuffer(chunk, dtype=np.uint8)
            # a line ends with LF, CRLF or a lone CR (old Mac exports)
            cr = arr == 13
            cr[:-1] &= arr[1:] != 10
            ends = np.flatnonzero((arr == 10) | cr)
            if len(ends):
                gaps = np.diff(ends)
                first = current + int(ends[0])
                longest = max(first, int(gaps.max()) - 1 if len(gaps) else 0)
                if longest > longest_allowed:
                    where = lines + 1 if first > longest_allowed else lines + 2 + int(np.argmax(gaps - 1 > longest_allowed))
                    _too_long(path, where, longest_allowed)
                lines += len(ends)
                current = len(chunk) - int(ends[-1]) - 1
            else:
                current += len(chunk)
            if current > longest_allowed:
                _too_long(path, lines + 1, longest_allowed)
            if lines > limits.max_rows:
                raise InputFileError(f"{path.name} : plus de {_count(limits.max_rows)} lignes (limite ; variable "
                                     f"SPSTI_MONITOR_MAX_ROWS)")
    return h.hexdigest()


def _too_long(path: Path, line: int, limit: int):
    raise InputFileError(f"{path.name} : ligne {line} démesurée (plus de {_count(limit)} octets) : une cellule "
                         f"ou une ligne dépasse les limites (variables SPSTI_MONITOR_MAX_CELL_CHARS et "
                         f"SPSTI_MONITOR_MAX_COLUMNS)")


def _zip_directory_entries(path: Path) -> int | None:
    """Number of entries the end-of-central-directory record announces (None if not found),
    read before :class:`zipfile.ZipFile` builds an object per entry."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - (65535 + 22)))
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    entries, directory_size = struct.unpack("<HI", tail[at + 10:at + 16])
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:      # ZIP64: far beyond any workbook
        return MAX_ZIP_ENTRIES + 1
    return entries


def check_xlsx(path: Path, limits: InputLimits) -> None:
    """Refuse a workbook whose zip directory or inflated XML breaks a limit, before openpyxl
    opens it: too many entries, declared sizes beyond the limits, a DTD (entity expansion),
    a text between two tags longer than a cell may be."""
    entries = _zip_directory_entries(path)
    if entries is not None and entries > MAX_ZIP_ENTRIES:
        raise InputFileError(f"{path.name} : classeur XLSX anormal ({_count(entries)} éléments dans l'archive, "
                             f"limite {_count(MAX_ZIP_ENTRIES)})")
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            total = sum(i.file_size for i in infos)
            if total > limits.max_uncompressed_bytes:
                raise InputFileError(
                    f"{path.name} : classeur XLSX trop volumineux une fois décompressé ({_mb(total)} annoncés, "
                    f"limite {_mb(limits.max_uncompressed_bytes)} ; variable SPSTI_MONITOR_MAX_UNCOMPRESSED_MB)")
            strings_cap = limits.max_uncompressed_bytes // 4
            for info in infos:
                name = info.filename.lower()
                sheet = name.startswith("xl/worksheets/")
                cap = (limits.max_uncompressed_bytes if sheet else
                       strings_cap if name.endswith("sharedstrings.xml") else MAX_AUX_PART_BYTES)
                if info.file_size > cap:
                    raise InputFileError(f"{path.name} : partie « {info.filename} » du classeur trop volumineuse "
                                         f"une fois décompressée ({_mb(info.file_size)}, limite {_mb(cap)})")
                # every part, whatever its name: openpyxl follows the relationships, so a sheet
                # or shared strings renamed sheet1.bin are read all the same
                _scan_xml(z, info, path, limits)
    except zipfile.BadZipFile as exc:
        raise InputFileError(f"{path.name} : classeur XLSX illisible (archive zip corrompue : {exc})") from None
    except (NotImplementedError, RuntimeError, OSError, EOFError, ValueError, zlib.error) as exc:
        if isinstance(exc, InputFileError):
            raise
        why = "données compressées corrompues" if isinstance(exc, zlib.error) else type(exc).__name__
        raise InputFileError(f"{path.name} : classeur XLSX illisible ({why})") from None


def _scan_xml(z: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limits: InputLimits) -> None:
    # a cell's text can hold max_cell_chars characters of up to 4 bytes, or 6 bytes once
    # written as an entity (&#12345;)
    longest_allowed = limits.max_cell_chars * 8 + 1024
    run = 0                  # bytes since the last "<" at the end of the previous chunk
    tail = b""
    with z.open(info) as f:
        while chunk := f.read(CHUNK):
            window = tail + chunk[:16]
            if any(m in chunk or m in window for m in (b"<!DOCTYPE", b"<!ENTITY")):
                raise InputFileError(f"{path.name} : classeur XLSX refusé : la partie « {info.filename} » "
                                     f"déclare un DTD (entités XML), ce que ne fait aucun tableur")
            tail = chunk[-16:]
            arr = np.frombuffer(chunk, dtype=np.uint8)
            tags = np.flatnonzero(arr == 60)
            if len(tags):
                gaps = np.diff(tags)
                longest = max(run + int(tags[0]), int(gaps.max()) if len(gaps) else 0)
                run = len(chunk) - int(tags[-1])
            else:
                longest = run = run + len(chunk)
            if max(longest, run) > longest_allowed:
                raise InputFileError(
                    f"{path.name} : classeur XLSX refusé : un texte de plus de {_count(limits.max_cell_chars)} "
                    f"caractères dans « {info.filename} » (limite des cellules ; variable "
                    f"SPSTI_MONITOR_MAX_CELL_CHARS)")
