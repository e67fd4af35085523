"""The README and the code say the same thing (after sqlite-utils' tests/test_docs.py).

* every command of ``spsti-monitor`` is in the README's command table, and every command
  there exists;
* every environment variable the code reads is in the README's configuration table, and
  every variable documented there is read somewhere;
* every package named in the README's architecture table exists, and every package exists
  in it.
"""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from monitor.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PRODUCTION = ("monitor", "detectors", "alerts", "dashboard", "fixtures")


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert m, f"README has no « ## {title} » section"
    return m.group(1)


def _cli_commands(group: click.Group = cli, prefix: str = "") -> set[str]:
    out = set()
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out |= _cli_commands(cmd, path + " ")
        else:
            out.add(path)
    return out


def _readme_commands() -> set[str]:
    """Commands in the first cell of each row of the command table: `group sub\\|sub … args`."""
    out = set()
    for row in re.findall(r"^\| `([^`]+)`", _section("Command line"), re.M):
        words = row.replace("\\|", "|").split()
        head, rest = words[0], words[1:]
        if rest and re.fullmatch(r"[a-z]+(\|[a-z]+)*", rest[0]):
            out |= {f"{head} {sub}" for sub in rest[0].split("|")}
        else:
            out.add(head)
    return out


def test_every_command_is_documented():
    missing = _cli_commands() - _readme_commands()
    assert not missing, f"commands missing from the README: {sorted(missing)}"


def test_every_documented_command_exists():
    unknown = _readme_commands() - _cli_commands()
    assert not unknown, f"the README documents commands that do not exist: {sorted(unknown)}"


def _code_text() -> str:
    parts = []
    for pkg in PRODUCTION:
        parts += [p.read_text(encoding="utf-8") for p in (ROOT / pkg).rglob("*.py")]
    return "\n".join(parts)


def _readme_variables() -> set[str]:
    """``SPSTI_MONITOR_X`` names in the configuration table; `_Y` after one means its prefix + _Y."""
    out = set()
    for row in _section("Configuration").splitlines():
        prefix = None
        for name in re.findall(r"`(SPSTI_MONITOR_[A-Z0-9_]+|_[A-Z0-9_]+)`", row):
            if name.startswith("_"):
                assert prefix, f"« {name} » without a full name before it: {row}"
                out.add(prefix + name)
            else:
                out.add(name)
                prefix = name.rsplit("_", 1)[0]
    return out


def test_every_environment_variable_read_is_documented():
    read = set(re.findall(r"SPSTI_MONITOR_[A-Z0-9_]+", _code_text()))
    assert read, "no variable found: the scan is broken"
    missing = read - _readme_variables()
    assert not missing, f"variables read by the code but missing from the README: {sorted(missing)}"


def test_every_documented_environment_variable_is_read():
    used = _code_text() + (ROOT / ".ci" / "run").read_text() + "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("*.py"))
    unused = {v for v in _readme_variables() if v not in used}
    assert not unused, f"the README documents variables nothing reads: {sorted(unused)}"


def _readme_packages() -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+(?:/[a-z_]+)*)/` \|", _section("Architecture"), re.M))


def _packages() -> set[str]:
    out = set()
    for pkg in PRODUCTION:
        for init in (ROOT / pkg).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).as_posix()
            if "migrations" not in rel:
                out.add(rel)
    return out


def test_every_package_is_in_the_architecture_table():
    missing = _packages() - _readme_packages()
    assert not missing, f"packages missing from the README's architecture table: {sorted(missing)}"


def test_every_package_of_the_architecture_table_exists():
    unknown = _readme_packages() - _packages() - {"tests"}
    assert not unknown, f"the README's architecture table names packages that do not exist: {sorted(unknown)}"


@pytest.mark.parametrize("target", ["venv", "demo", "test", "bench", "fixtures"])
def test_make_targets_in_the_readme_exist(target):
    assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.M)
    assert f"make {target}" in README
