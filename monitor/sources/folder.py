"""A drop folder of CSV/XLSX files (the usual SFTP landing zone).

Each pull lists the files matching the patterns, leaves alone those still being written
(a temporary name such as ``.part``, ``.tmp``, ``.filepart``, ``~$…``, a hidden name, or a
modification less than ``settle_seconds`` old, or a size that changes while it is read),
and ingests the files whose bytes (SHA-256) were never received. Files are read, never
deleted, moved or renamed. Files are taken oldest first, so that a correction sent after
the original becomes the current version.
"""
from __future__ import annotations

import fnmatch
import os
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from monitor.config.env import input_limits
from monitor.ingest.readers import checksum_bytes, checksum_file
from monitor.config.settings import FolderSourceConfig
from monitor.sources.base import (NOT_MODIFIED, OK, BaseSource, PullResult, ingest_path, ingest_snapshot,
                                   known_checksums)

TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".filepart", ".crdownload", ".download",
                 ".swp", ".lock", ".inprogress", ".uploading")
TEMP_PREFIXES = (".", "~$", "~")

# (path, size, mtime_ns) -> checksum: a file is hashed once per process, not at every pull
_CHECKSUMS: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def is_temporary_name(name: str) -> bool:
    lower = name.lower()
    return lower.startswith(TEMP_PREFIXES) or lower.endswith(TEMP_SUFFIXES) or lower.endswith("~")


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    lower = name.lower()
    return any(fnmatch.fnmatchcase(lower, p.lower()) for p in patterns)


def candidates(cfg: FolderSourceConfig) -> list[Path]:
    """Files of the folder matching the patterns, temporary names excluded, oldest first."""
    found = []
    if cfg.recursive:
        walker = ((Path(d), files) for d, dirs, files in os.walk(cfg.path)
                  if not any(part.startswith(".") for part in Path(d).relative_to(cfg.path).parts))
    else:
        walker = [(cfg.path, [e.name for e in os.scandir(cfg.path) if e.is_file()])]
    for directory, names in walker:
        for name in names:
            if is_temporary_name(name) or not _matches(name, cfg.patterns):
                continue
            path = directory / name
            try:
                st = path.stat()
            except OSError:
                continue        # vanished between listing and stat
            found.append((st.st_mtime, str(path), path))
    return [p for _, _, p in sorted(found)]


class FolderSource(BaseSource):
    config: FolderSourceConfig

    def _pull(self, engine: sa.Engine, result: PullResult) -> None:
        cfg = self.config
        if not cfg.path.is_dir():
            result.fail(f"dossier de dépôt introuvable ou inaccessible : {cfg.path}", retryable=True)
            return
        now = time.time()
        snapshots: list[tuple[Path, str, bytes | None]] = []
        waiting = []
        oversize: set[Path] = set()
        max_bytes = input_limits().max_file_bytes
        for path in candidates(cfg):
            try:
                before = path.stat()
            except OSError:
                continue
            if now - before.st_mtime < cfg.settle_seconds:
                waiting.append(path.name)
                continue
            key = (str(path), before.st_size, before.st_mtime_ns)
            with _LOCK:
                digest = _CHECKSUMS.get(key)
            data = None
            if before.st_size > max_bytes:
                # never held in memory: hashed in chunks, then refused by ingest's size limit
                try:
                    digest = digest or checksum_file(path)
                except OSError as exc:
                    result.notes.append(f"{path.name} : illisible pour l'instant ({exc.strerror})")
                    continue
                oversize.add(path)
            elif digest is None:
                try:
                    data = path.read_bytes()
                    after = path.stat()
                except OSError as exc:
                    result.notes.append(f"{path.name} : illisible pour l'instant ({exc.strerror})")
                    continue
                if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) \
                        or len(data) != after.st_size:
                    waiting.append(path.name)        # still being written: next pull
                    continue
                digest = checksum_bytes(data)
                with _LOCK:
                    _CHECKSUMS[key] = digest
            snapshots.append((path, digest, data))
        if waiting:
            result.notes.append("en cours d'écriture, repris au prochain passage : " + ", ".join(waiting))

        known = known_checksums(engine, sorted({d for _, d, _ in snapshots}), cfg.name)
        seen: set[str] = set(known)
        errors = []
        for path, digest, data in snapshots:
            if digest in seen:
                continue
            seen.add(digest)
            if path in oversize:
                error = ingest_path(engine, path, cfg.name, result)
                result.checksum = digest
                if error:
                    errors.append(error)
                continue
            if data is None:                      # hashed by an earlier pull: read it now
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    errors.append(f"{path.name} : illisible ({exc.strerror})")
                    continue
                if checksum_bytes(data) != digest:
                    continue                      # changed since: the next pull takes it
            error = ingest_snapshot(engine, data, path.name, cfg.name, result, digest)
            result.checksum = digest
            if error:
                errors.append(error)
        if errors:
            result.fail(" ; ".join(errors))
        elif result.files == 0:
            result.status = NOT_MODIFIED
        else:
            result.status = OK
