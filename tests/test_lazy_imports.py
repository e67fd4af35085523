"""Fast paths: a command loads only the libraries it needs. ``--help``, ``ingest``, ``alerts``
and ``detect`` with nothing new to do never import PyOD, numba, statsmodels, matplotlib or
Streamlit (seconds of start-up each); only a detection that runs the multivariate detector
loads PyOD, and even then not matplotlib's plotting module."""
from __future__ import annotations

import subprocess
import sys

import pytest


HEAVY = {"pyod", "numba", "statsmodels", "streamlit", "sklearn", "matplotlib"}
PROBE = ("import atexit, sys\n"
         "atexit.register(lambda: print('LOADED', ' '.join(sorted({m.split('.')[0] for m in sys.modules}\n"
         "    | ({'pyplot'} if type(sys.modules.get('matplotlib.pyplot')).__name__ == 'module' else set()))), file=sys.stderr))\n"
         "sys.argv = ['spsti-monitor'] + sys.argv[1:]\n"
         "from monitor.cli.main import main\n"
         "main()\n")


def _loaded(*args: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300)
    line = next(x for x in r.stderr.splitlines() if x.startswith("LOADED "))
    return set(line.split()[1:])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from fixtures.generate import generate, write_panel
    from fixtures.harness.datasets import load_dataset
    from monitor.store import db

    tmp = tmp_path_factory.mktemp("lazy")
    write_panel(generate(seed=5, n_services=40, n_months=12), tmp)
    url = f"sqlite:///{tmp / 'lazy.db'}"
    engine = db.get_engine(url)
    load_dataset(engine, tmp)
    engine.dispose()
    return url, tmp


def test_light_commands_do_not_import_heavy_libraries(data):
    url, tmp = data
    for args in (["--help"], ["--db", url, "ingest", str(sorted(tmp.glob("indicators_*.csv"))[-1])], ["--db", url, "alerts", "export"],
                 ["--db", url, "alerts", "--help"], ["--db", url, "detect", "--help"]):
        assert not (_loaded(*args) & HEAVY), args


def test_detection_loads_pyod_only_when_it_runs(data):
    url, tmp = data
    ran = _loaded("--db", url, "detect")
    assert "pyod" in ran and "pyplot" not in ran          # PyOD is the engine; its plotting is not loaded
    again = _loaded("--db", url, "detect")                # nothing new: answered before any detector loads
    assert not (again & HEAVY)
