"""Start the Streamlit dashboard as a child process bound to 127.0.0.1."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "dashboard" / "server.py"   # st.App around app.py


def dashboard_command(port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", "127.0.0.1", "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--theme.base", "light",
            "--client.showErrorDetails", "none"]


def serve_dashboard(db_url: str, port: int) -> int:
    env = dict(os.environ, SPSTI_MONITOR_DB=db_url)
    try:
        return subprocess.call(dashboard_command(port), env=env)
    except KeyboardInterrupt:
        return 0
