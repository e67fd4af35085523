"""Sources of indicator files: a drop folder, an HTTP endpoint, a SQL query.

``make_source(config).pull(engine)`` pulls one configured source, records a ``SourcePull``
row and ingests what is new (see ``base.py``).
"""
from __future__ import annotations

import sqlalchemy as sa

from monitor.config.settings import SourceConfig
from monitor.sources.base import PullResult, Source

__all__ = ["PullResult", "Source", "make_source", "pull_source"]


def make_source(config: SourceConfig) -> Source:
    if config.kind == "folder":
        from monitor.sources.folder import FolderSource
        return FolderSource(config)
    if config.kind == "http":
        from monitor.sources.http import HttpSource
        return HttpSource(config)
    if config.kind == "sql":
        from monitor.sources.sql import SqlSource
        return SqlSource(config)
    raise ValueError(f"type de source inconnu : {config.kind}")


def pull_source(engine: sa.Engine, config: SourceConfig) -> PullResult:
    return make_source(config).pull(engine)
