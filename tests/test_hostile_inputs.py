"""The hostile battery: files built to exhaust memory or time, or to slip bad data in, each
ingested through the real CLI in a process limited to 1.5 GB of address space and a timeout.

Each must be refused (exit status 2, one French sentence naming the limit) or quarantined,
and nothing stored may change. The peak memory and the time of each are printed
(``pytest -s``); they are measured, not asserted (no timing assertion: see README, Tests).
The big files are generated in the test's temporary folder, cheaply (XML and zip entries
streamed, a sparse file for the size limit).
"""
from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows, write_csv  # noqa: E402
from hostile_files import HEADER, inline_row, write_xlsx  # noqa: E402

from monitor.store import db, schema  # noqa: E402
from monitor.ingest.indicators import ingest_file  # noqa: E402
from monitor.ingest.register import load_register  # noqa: E402

pytestmark = pytest.mark.timeout(600)

MEMORY_LIMIT = 1536 * 1024 * 1024          # RLIMIT_AS of each ingest process
TIMEOUT = 120                                # seconds, a hang guard (the goal is 20 s)
_SCRIPT = Path(sys.executable).with_name("spsti-monitor")
EXE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "monitor"]
STORED = ["services", "observations", "quarantine", "alerts", "findings", "detection_state"]
MEASURED: dict[str, tuple[float, float, int]] = {}


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def ingest(url: str, path: Path, env: dict | None = None) -> tuple[int, str, str]:
    """``spsti-monitor ingest`` in a child limited in memory; records its peak RSS and time."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("SPSTI_MONITOR_MAX") and k not in ("SPSTI_MONITOR_DB", "SPSTI_MONITOR_DEBUG")}
    environ.update(env or {})
    environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out, err = path.with_suffix(".out"), path.with_suffix(".err")
    with open(out, "w") as o, open(err, "w") as e:
        t0 = time.monotonic()
        proc = subprocess.Popen(EXE + ["--db", url, "ingest", str(path)], stdout=o, stderr=e, env=environ,
                                preexec_fn=_limit_memory)
        timer = threading.Timer(TIMEOUT, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - t0
    MEASURED[path.name] = (seconds, usage.ru_maxrss / 1024, path.stat().st_size)
    print(f"\n{path.name}: {path.stat().st_size / 1e6:.1f} MB on disk, exit {proc.returncode}, "
          f"{seconds:.1f} s, peak {usage.ru_maxrss / 1024:.0f} MB")
    return proc.returncode, out.read_text(), err.read_text()


def snapshot(url: str) -> str:
    """A digest of everything stored that a failed ingest must not change."""
    engine = sa.create_engine(url)
    h = hashlib.sha256()
    try:
        with engine.connect() as c:
            for table in STORED:
                for row in c.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1")):
                    h.update(repr(tuple(row)).encode())
            for row in c.execute(sa.text("SELECT id, status FROM submissions WHERE status <> 'failed' ORDER BY id")):
                h.update(repr(tuple(row)).encode())
    finally:
        engine.dispose()
    return h.hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A database with a register and a month of data, and a folder for the hostile files."""
    tmp = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{tmp / 'hostile.db'}"
    engine = db.get_engine(url)
    schema.init(engine)
    svcs = register_rows(4)
    write_csv(tmp / "reg.csv", svcs, REGISTER_COLUMNS)
    load_register(engine, tmp / "reg.csv")
    write_csv(tmp / "ok.csv", indicator_rows(svcs, ["2025-01"], seed=1), INDICATOR_COLUMNS)
    ingest_file(engine, tmp / "ok.csv")
    engine.dispose()
    yield url, tmp, svcs[0]["service_id"]
    if MEASURED:
        print("\nhostile battery (file: seconds, peak MB, size on disk):")
        for name, (sec, mb, size) in MEASURED.items():
            print(f"  {name}: {sec:.1f} s, {mb:.0f} MB, {size / 1e6:.1f} MB")


def refused(world, path: Path, *phrases: str, env: dict | None = None) -> str:
    url, _, _ = world
    before = snapshot(url)
    code, out, err = ingest(url, path, env)
    assert "Traceback" not in err and "MemoryError" not in err, err[-2000:]
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, (code, out, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("Erreur : ") and path.name in lines[0], lines
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert snapshot(url) == before
    return lines[0]


# --------------------------------------------------------------------------- workbooks

def _sheet_rows(sid: str, extra: list[str] = ()):
    yield inline_row(1, HEADER)
    yield inline_row(2, [sid, "2025-02", "physician_fte", "18.6"])
    yield from extra


def test_xlsx_declaring_the_whole_grid_with_a_cell_in_the_last_column_and_row(world):
    _, tmp, sid = world
    p = write_xlsx(tmp / "grille_entiere.xlsx", _sheet_rows(sid, ['<row r="1048576"><c r="XFD1048576" '
                                                                   't="inlineStr"><is><t>x</t></is></c></row>']),
                   dimension="A1:XFD1048576")
    assert p.stat().st_size < 10_000
    refused(world, p, "colonne 16384", "SPSTI_MONITOR_MAX_COLUMNS")


def test_xlsx_one_cell_a_million_rows_down_counts_as_empty_rows(world):
    _, tmp, sid = world
    p = write_xlsx(tmp / "cellule_lointaine.xlsx", _sheet_rows(sid, ['<row r="1048576"><c r="A1048576" '
                                                                      't="inlineStr"><is><t>x</t></is></c></row>']),
                   dimension="A1:XFD1048576")
    refused(world, p, "lignes vides", "SPSTI_MONITOR_MAX_EMPTY_ROWS")


def test_xlsx_declared_grid_but_harmless_content_is_read(world):
    url, tmp, sid = world
    p = write_xlsx(tmp / "grille_declaree.xlsx", _sheet_rows(sid), dimension="A1:XFD1048576")
    code, out, err = ingest(url, p)
    assert code == 0 and "acceptées 1" in out, (out, err)


def test_xlsx_million_empty_rows(world):
    _, tmp, sid = world
    rows = (f'<row r="{r}"/>' for r in range(3, 1_048_577))
    p = write_xlsx(tmp / "million_lignes_vides.xlsx", _sheet_rows(sid, rows), dimension="A1:D1048576")
    refused(world, p, "lignes vides")


def test_xlsx_gigabyte_of_whitespace_in_shared_strings(world):
    _, tmp, sid = world
    blank = b" " * (16 * 1024 * 1024)

    def strings():
        yield b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/' \
              b'spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t xml:space="preserve">'
        for _ in range(64):
            yield blank
        yield b"</t></si></sst>"

    p = write_xlsx(tmp / "gigaoctet_blanc.xlsx", _sheet_rows(sid), shared_strings=strings(), level=1)
    assert p.stat().st_size < 8_000_000
    refused(world, p, "trop volumineux une fois décompressé", "SPSTI_MONITOR_MAX_UNCOMPRESSED_MB")


def test_xlsx_hundred_megabytes_of_whitespace_in_one_shared_string(world):
    _, tmp, sid = world

    def strings():
        yield b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/' \
              b'spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t xml:space="preserve">'
        yield b" " * (100 * 1024 * 1024)
        yield b"</t></si></sst>"

    p = write_xlsx(tmp / "chaine_geante.xlsx", _sheet_rows(sid), shared_strings=strings(), level=1)
    refused(world, p, "un texte de plus de 10\u202f000 caractères", "SPSTI_MONITOR_MAX_CELL_CHARS")


def test_xlsx_huge_inline_cell(world):
    _, tmp, sid = world
    p = write_xlsx(tmp / "cellule_enorme.xlsx", _sheet_rows(sid, [inline_row(3, [sid, "2025-03", "x" * 5_000_000, "1"])]))
    refused(world, p, "un texte de plus de 10\u202f000 caractères")


def test_xlsx_cell_just_over_the_limit_is_named_with_its_line(world):
    _, tmp, sid = world
    p = write_xlsx(tmp / "cellule_longue.xlsx", _sheet_rows(sid, [inline_row(3, [sid, "2025-03", "x" * 10_500, "1"])]))
    refused(world, p, "ligne 3", "cellule de plus de 10\u202f000 caractères")


def test_xlsx_entity_expansion(world):
    _, tmp, sid = world
    laughs = ('<!DOCTYPE lolz [<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)) + ']>')
    p = tmp / "entites.xlsx"
    write_xlsx(p, _sheet_rows(sid, [inline_row(3, [sid, "2025-03", "&lol9;", "1"])]))
    # put the DTD in the sheet's prolog
    with zipfile.ZipFile(p) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    parts["xl/worksheets/sheet1.xml"] = sheet.replace("?>", "?>" + laughs, 1).encode()
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in parts.items():
            z.writestr(n, data)
    refused(world, p, "DTD")


def test_zip_with_twenty_thousand_entries(world):
    _, tmp, _ = world
    p = tmp / "milliers_entrees.xlsx"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as z:
        for i in range(20_000):
            z.writestr(f"xl/media/{i}.bin", b"")
    refused(world, p, "éléments dans l'archive")


def test_not_a_zip_behind_an_xlsx_name(world):
    _, tmp, _ = world
    p = tmp / "faux.xlsx"
    p.write_bytes(b"PK\x03\x04" + os.urandom(4000))
    refused(world, p, "XLSX illisible")


def test_xlsx_with_a_corrupt_compressed_sheet(world):
    _, tmp, sid = world
    p = write_xlsx(tmp / "deflate_corrompu.xlsx", _sheet_rows(sid, (inline_row(r, [sid, "2025-03", "x", "1"])
                                                                    for r in range(3, 3000))))
    data = bytearray(p.read_bytes())
    start = data.find(b"xl/worksheets/sheet1.xml") + len("xl/worksheets/sheet1.xml")
    for k in range(start + 200, start + 400):          # inside the sheet's deflate stream
        data[k] ^= 0x5A
    p.write_bytes(bytes(data))
    refused(world, p, "XLSX illisible")


# --------------------------------------------------------------------------- text files

def test_file_larger_than_the_size_limit_is_refused_unread(world):
    _, tmp, _ = world
    p = tmp / "enorme.csv"
    with open(p, "wb") as f:                 # sparse: 1.1 GiB on paper, nothing written
        f.write(b"service_id,period,indicator,value\n")
        f.truncate(1100 * 1024 * 1024)
    refused(world, p, "fichier trop volumineux", "SPSTI_MONITOR_MAX_FILE_MB")


def test_configured_size_limit(world):
    _, tmp, sid = world
    p = tmp / "deux_mo.csv"
    p.write_text("service_id,period,indicator,value\n" + f"{sid},2025-02,physician_fte,18.6\n" * 40_000)
    refused(world, p, "fichier trop volumineux", env={"SPSTI_MONITOR_MAX_FILE_MB": "1"})


def test_ten_million_newlines(world):
    _, tmp, _ = world
    p = tmp / "dix_millions_de_lignes.csv"
    with open(p, "wb") as f:
        f.write(b"service_id,period,indicator,value\n")
        for _ in range(10):
            f.write(b"\n" * 1_000_001)
    refused(world, p, "plus de 10\u202f000\u202f000 lignes", "SPSTI_MONITOR_MAX_ROWS")


def test_configured_row_limit(world):
    _, tmp, sid = world
    p = tmp / "cinq_mille_lignes.csv"
    p.write_text("service_id,period,indicator,value\n" + f"{sid},2025-02,physician_fte,18.6\n" * 5000)
    refused(world, p, "plus de 1\u202f000 lignes", env={"SPSTI_MONITOR_MAX_ROWS": "1000"})


def test_many_empty_lines(world):
    _, tmp, sid = world
    p = tmp / "lignes_vides.csv"
    p.write_text("service_id,period,indicator,value\n" + "\n" * 150_000 + f"{sid},2025-02,physician_fte,18.6\n")
    refused(world, p, "lignes vides", "SPSTI_MONITOR_MAX_EMPTY_ROWS")


def test_one_line_of_a_hundred_megabytes(world):
    _, tmp, sid = world
    p = tmp / "ligne_geante.csv"
    with open(p, "wb") as f:
        f.write(b"service_id,period,indicator,value\n")
        f.write(f"{sid},2025-02,physician_fte,\"".encode())
        for _ in range(100):
            f.write(b"9" * (1024 * 1024))
        f.write(b"\"\n")
    refused(world, p, "ligne 2 démesurée")


def test_unclosed_quote_swallowing_the_file(world):
    _, tmp, sid = world
    p = tmp / "guillemet_ouvert.csv"
    p.write_text("service_id,period,indicator,value\n" + f"{sid},2025-02,\"physician_fte,18.6\n"
                 + f"{sid},2025-03,physician_fte,18.6\n" * 3000)
    refused(world, p, "cellule de plus de 10\u202f000 caractères")


def test_cell_over_the_limit(world):
    _, tmp, sid = world
    p = tmp / "cellule.csv"
    p.write_text("service_id,period,indicator,value\n" + f"{sid},2025-02,{'x' * 12_000},18.6\n")
    refused(world, p, "ligne 2", "cellule de plus de 10\u202f000 caractères")


def test_too_many_columns(world):
    _, tmp, sid = world
    p = tmp / "colonnes.csv"
    p.write_text(",".join(HEADER + [f"c{i}" for i in range(500)]) + "\n" + f"{sid},2025-02,physician_fte,18.6\n")
    refused(world, p, "504 colonnes", "SPSTI_MONITOR_MAX_COLUMNS")


def test_nul_bytes(world):
    _, tmp, sid = world
    p = tmp / "nul.csv"
    p.write_bytes(b"service_id,period,indicator,value\n" + f"{sid},2025-02,physician_fte,18.6\n".encode() * 1000
                  + b"\x00" + b"x\n")
    refused(world, p, "binaire")


def test_mixed_encoding_names_the_first_line_that_does_not_decode(world):
    _, tmp, sid = world
    p = tmp / "encodage_mixte.csv"
    p.write_bytes("service_id,period,indicator,value,commentaire\n".encode()
                  + f"{sid},2025-02,physician_fte,18.6,Santé au travail\n".encode("utf-8")
                  + f"{sid},2025-03,physician_fte,18.6,Prévention\n".encode("utf-8")
                  + f"{sid},2025-04,physician_fte,18.6,Santé\n".encode("cp1252")
                  + f"{sid},2025-05,physician_fte,18.6,Santé\n".encode("utf-8"))
    refused(world, p, "encodage mixte", "ligne 4")


def test_future_periods_are_quarantined_not_stored(world):
    url, tmp, sid = world
    p = tmp / "futur.csv"
    p.write_text("service_id,period,indicator,value\n" + f"{sid},2099-12,physician_fte,18.6\n"
                 + f"{sid},2099,cotisation_vs_cmn_ratio,1.0\n")
    engine = sa.create_engine(url)
    with engine.connect() as c:
        before = c.execute(sa.text("SELECT count(*) FROM observations")).scalar_one()
    code, out, err = ingest(url, p)
    assert code == 0 and "acceptées 0, rejetées 2" in out and "période future" in out, (out, err)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM observations")).scalar_one() == before
        assert c.execute(sa.text("SELECT max(month_index) FROM observations")).scalar_one() < 2099 * 12
    engine.dispose()
