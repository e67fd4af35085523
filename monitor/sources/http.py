"""An HTTP(S) endpoint serving one file in the exchange format (CSV or XLSX).

* Conditional GET: ``If-None-Match`` / ``If-Modified-Since`` from the last successful pull;
  a ``304`` is recorded as ``not_modified``.
* Timeouts: ``timeout`` to connect and for each read, ``total_timeout`` for the download.
* Retries with exponential backoff (``backoff`` seconds, doubled each time, at most
  ``backoff_max``; a ``Retry-After`` is honoured within that bound) on network errors,
  timeouts, truncated bodies and 408 / 429 / 5xx answers; other answers are not retried.
* The body goes to a temporary file, checked against ``Content-Length``: a body cut short
  is an error and nothing is ingested. Bytes already received (same SHA-256) are not
  ingested again, even when the server ignores the conditional headers.

Standard library only (urllib), so the pulls add no dependency.
"""
from __future__ import annotations

import email.utils
import hashlib
import http.client
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import PurePosixPath

import sqlalchemy as sa

from monitor.config.settings import ConfigError, HttpSourceConfig
from monitor.sources.base import NOT_MODIFIED, OK, STOP, BaseSource, PullResult, ingest_snapshot, last_good_pull

RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
_CHUNK = 64 * 1024


class FetchError(Exception):
    def __init__(self, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class _NoRedirectToOtherSchemes(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise FetchError(f"redirection refusée vers {newurl}", retryable=False)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoRedirectToOtherSchemes)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _file_name(cfg: HttpSourceConfig, content_type: str | None, disposition: str | None) -> str:
    name = cfg.file_name
    if not name and disposition:
        m = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', disposition, re.I)
        if m:
            name = urllib.parse.unquote(m.group(1))
    if not name:
        name = urllib.parse.unquote(PurePosixPath(urllib.parse.urlsplit(cfg.url).path).name)
    name = re.sub(r"[^\w.\-]+", "_", name or "").strip("._") or "export"
    if not name.lower().endswith((".csv", ".xlsx", ".xlsm")):
        name += ".xlsx" if content_type and "spreadsheetml" in content_type else ".csv"
    return name[:200]


def fetch(cfg: HttpSourceConfig, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """One GET. Returns (status, headers, body) for 200 or 304; raises FetchError otherwise."""
    request = urllib.request.Request(cfg.url, headers={"User-Agent": "spsti-monitor", **headers})
    started = time.monotonic()
    try:
        resp = _OPENER.open(request, timeout=cfg.timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 304:
                return 304, dict(exc.headers.items()), b""
            raise FetchError(f"le serveur a répondu HTTP {exc.code} ({exc.reason})",
                             retryable=exc.code in RETRY_STATUSES,
                             retry_after=_retry_after(exc.headers.get("Retry-After"))) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise FetchError(f"délai de connexion dépassé ({cfg.timeout:g} s)", retryable=True) from None
        raise FetchError(f"serveur injoignable ({reason})", retryable=True) from None
    except (TimeoutError, socket.timeout):
        raise FetchError(f"délai de réponse dépassé ({cfg.timeout:g} s sans réponse)", retryable=True) from None
    except (http.client.HTTPException, ConnectionError, OSError) as exc:
        raise FetchError(f"connexion interrompue avant la réponse ({type(exc).__name__})", retryable=True) from None
    with resp:
        status = resp.status
        head = dict(resp.headers.items())
        declared = resp.headers.get("Content-Length")
        body = bytearray()
        try:
            while True:
                if time.monotonic() - started > cfg.total_timeout:
                    raise FetchError(f"téléchargement trop long (plus de {cfg.total_timeout:g} s)", retryable=True)
                chunk = resp.read(_CHUNK)
                if not chunk:
                    break
                body += chunk
                if len(body) > cfg.max_bytes:
                    raise FetchError(f"réponse trop volumineuse (plus de {cfg.max_bytes} octets)", retryable=False)
        except (TimeoutError, socket.timeout):
            raise FetchError(f"délai de lecture dépassé ({cfg.timeout:g} s sans données) après "
                             f"{len(body)} octets", retryable=True) from None
        except http.client.IncompleteRead as exc:
            raise FetchError(f"réponse tronquée : connexion fermée au milieu du fichier "
                             f"({len(body) + len(exc.partial)} octets reçus)", retryable=True) from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise FetchError(f"connexion interrompue pendant le téléchargement après {len(body)} octets "
                             f"({type(exc).__name__})", retryable=True) from None
    if declared is not None and declared.strip().isdigit() and int(declared) != len(body):
        raise FetchError(f"réponse tronquée : {len(body)} octets reçus sur {int(declared)} annoncés",
                         retryable=True)
    if status != 200:
        raise FetchError(f"réponse HTTP {status} inattendue (200 attendu)", retryable=False)
    return status, head, bytes(body)


class HttpSource(BaseSource):
    config: HttpSourceConfig

    def _pull(self, engine: sa.Engine, result: PullResult) -> None:
        cfg = self.config
        try:
            headers = cfg.request_headers()
        except ConfigError as exc:
            result.fail(str(exc))
            return
        previous = last_good_pull(engine, cfg.name)
        if previous is not None:
            if previous.etag:
                headers["If-None-Match"] = previous.etag
            if previous.last_modified:
                headers["If-Modified-Since"] = previous.last_modified
        failures: list[str] = []
        for attempt in range(cfg.retries + 1):
            result.attempts = attempt + 1
            try:
                status, head, body = fetch(cfg, headers)
                break
            except FetchError as exc:
                failures.append(f"tentative {attempt + 1} : {exc}")
                if not exc.retryable or attempt == cfg.retries:
                    detail = f"échec après {attempt + 1} tentative(s) : " if attempt else ""
                    result.fail(f"{cfg.url} : {detail}{exc}")
                    if len(failures) > 1:
                        result.notes.extend(failures[:-1])
                    return
                delay = min(cfg.backoff * (2 ** attempt), cfg.backoff_max)
                if exc.retry_after is not None:
                    delay = min(max(delay, exc.retry_after), cfg.backoff_max)
                if STOP.wait(delay):
                    result.fail(f"{cfg.url} : arrêt demandé pendant les nouvelles tentatives ({exc})")
                    return
        result.notes.extend(failures)
        lower = {k.lower(): v for k, v in head.items()}
        result.etag = lower.get("etag")
        result.last_modified = lower.get("last-modified")
        if status == 304:
            result.status = NOT_MODIFIED
            if previous is not None:
                result.etag = result.etag or previous.etag
                result.last_modified = result.last_modified or previous.last_modified
                result.checksum = previous.checksum
            return
        digest = hashlib.sha256(body).hexdigest()
        result.checksum = digest
        name = _file_name(cfg, lower.get("content-type"), lower.get("content-disposition"))
        error = ingest_snapshot(engine, body, name, cfg.name, result, digest)
        if error:
            result.fail(error)
            return
        result.status = OK if result.files else NOT_MODIFIED
