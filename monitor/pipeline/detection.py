"""``detect``: run every detector as of each unprocessed month, then update the alerts."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from alerts.lifecycle import apply_findings, combine_findings
from detectors.base import empty_findings, exclude_faulty_cells, opening_findings
from detectors.panel import Panel
from detectors.registry import default_detectors
from monitor.store import db
from monitor.store.bulk import bulk_insert
from monitor.store.models import DetectionRun, DetectionState, Finding, Observation, Submission, utcnow
from monitor.pipeline.corrections import CorrectionStats, changed_keys, late_month, reconcile, replay_alerts
from monitor.pipeline.panel_store import load_panel, not_future
from monitor.vocabulary.catalogue import CATALOGUE
from monitor.vocabulary.periods import PeriodError, current_month_index, month_label, parse_period, period_code

Progress = Callable[[int, int, str], None]


@dataclass
class DetectionSummary:
    first_month: int | None = None
    last_month: int | None = None
    months: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    opened: int = 0
    reopened: int = 0
    resolved: int = 0
    seconds: float = 0.0
    up_to_date: bool = False
    corrections: CorrectionStats = field(default_factory=CorrectionStats)

    def summary_fr(self) -> str:
        if self.up_to_date:
            return "Détection déjà à jour : aucune nouvelle période à traiter."
        if self.months == 0:
            return "Aucune donnée à analyser : chargez des indicateurs avec « ingest »."
        cats = ", ".join(f"{k} {v}" for k, v in sorted(self.findings.items())) or "aucun"
        fixed = self.corrections.summary_fr()
        return (f"Détection de {month_label(self.first_month)} à {month_label(self.last_month)} "
                f"({self.months} mois) en {self.seconds:.1f} s : constats {cats} ; "
                f"alertes ouvertes {self.opened}, rouvertes {self.reopened}, résolues {self.resolved}"
                + (f" ; {fixed}" if fixed else ""))


def run_detectors(panel: Panel, months: np.ndarray, detectors=None, progress: Progress | None = None) -> pd.DataFrame:
    """All findings for ``months``; the cells any detector finds faulty are first kept out of
    the statistics (:meth:`detectors.base.Detector.exclusions`)."""
    detectors = detectors if detectors is not None else default_detectors()
    exclude_faulty_cells(panel, detectors)
    out = []
    for i, det in enumerate(detectors, start=1):
        if progress:
            progress(i, len(detectors), det.name)
        f = det.detect(panel, months)
        if len(f):
            out.append(f)
    return name_periods(panel, pd.concat(out, ignore_index=True) if out else empty_findings())


def name_periods(panel: Panel, findings: pd.DataFrame) -> pd.DataFrame:
    """Each finding's period as the data name it (2025-03, 2025-Q2, 2024): the frequency its
    detector saw, else the frequency its indicator is reported at."""
    f = findings
    kinds = f["period_kind"].where(f["period_kind"].notna(), None)
    missing = kinds.isna()
    if missing.any():
        kinds = kinds.copy()
        kinds[missing] = [panel.period_kind(c if c in CATALOGUE else None) for c in f.loc[missing, "indicator"]]
    f = f.assign(period_kind=kinds)
    f["period"] = [period_code(m, k) for m, k in zip(f["month_index"], f["period_kind"])]
    return f


def default_target(panel: Panel) -> int:
    """The latest month with monthly data (an annual value for the current year must not push
    detection into months nobody has reported yet); the latest period otherwise."""
    obs = panel.observations
    monthly = obs.loc[obs["period_kind"] == "M", "month_index"]
    return int(monthly.max()) if len(monthly) else int(panel.last_month)


def reported_by_month(panel: Panel, months=None) -> dict[int, set]:
    """Per month (of ``months``, default all): the services that sent anything, and the
    (service, indicator) pairs sent, so that an alert counts normal periods at its own
    indicator's frequency (a yearly value is normal or not once a year, not every month)."""
    obs = panel.observations
    if months is not None:
        obs = obs[obs["month_index"].isin(np.asarray(months))]
    obs = obs[["month_index", "service_id", "indicator"]].drop_duplicates()
    out: dict[int, set] = {}
    for m, g in obs.groupby("month_index"):
        out[int(m)] = set(g["service_id"]) | set(zip(g["service_id"], g["indicator"]))
    return out


FINDING_ROW = ["run_id", "service_id", "indicator", "period", "month_index", "category", "detector",
               "detector_version", "score", "severity", "value", "expected", "lower", "upper",
               "explanation", "evidence"]


def _number(v) -> float | None:
    return None if v is None or v != v else float(v)


def _store_findings(conn: sa.Connection, run_id: int, findings: pd.DataFrame) -> None:
    """The findings that open alerts, in one bulk insert (COPY on PostgreSQL)."""
    f = opening_findings(findings)
    if f.empty:
        return
    evidence = [None if e is None or (isinstance(e, float) and e != e) else json.dumps(e) for e in f["evidence"]]
    rows = list(zip(
        [run_id] * len(f), f["service_id"].astype(str).tolist(), f["indicator"].astype(str).tolist(),
        f["period"].astype(str).tolist(), [int(v) for v in f["month_index"]], f["category"].astype(str).tolist(),
        f["detector"].astype(str).tolist(), f["detector_version"].astype(str).tolist(),
        [_number(v) or 0.0 for v in f["score"]], f["severity"].astype(str).tolist(),
        [_number(v) for v in f["value"]], [_number(v) for v in f["expected"]],
        [_number(v) for v in f["lower"]], [_number(v) for v in f["upper"]],
        [None if v is None or v != v else str(v) for v in f["explanation"]], evidence))
    bulk_insert(conn, Finding.__table__, FINDING_ROW, rows)


class DetectionBusy(RuntimeError):
    """Another detection run or people's edits kept this one from committing."""


def _claim_state(session) -> DetectionState:
    """Lock the detection state row for this transaction (SQLite: take the write lock now)."""
    if session.get(DetectionState, 1) is None:
        session.add(DetectionState(id=1, last_month_index=None))
        session.flush()
    session.execute(sa.update(DetectionState).where(DetectionState.id == 1).values(updated_at=utcnow()))
    return session.scalars(sa.select(DetectionState).where(DetectionState.id == 1)
                           .with_for_update().execution_options(populate_existing=True)).one()


@dataclass
class RebuildSummary:
    before: int | None
    after: int | None
    findings_removed: int

    def summary_fr(self) -> str:
        def label(m):
            return "aucune" if m is None else month_label(m)
        return (f"État de la détection reconstruit d'après les observations : dernière période traitée "
                f"{label(self.after)} (était {label(self.before)}) ; {self.findings_removed} constat(s) "
                f"des périodes à retraiter retiré(s)")


def _covered_month(conn: sa.Connection, run_started, run_last: int, current: int) -> int | None:
    """The last month a past run really processed: its last period, but no later than the data
    it could see (the latest started period received before it began) nor the current month."""
    o, sub = Observation.__table__, Submission.__table__
    received = (sa.select(sa.func.max(o.c.month_index))
                .join(sub, sub.c.id == o.c.submission_id)
                .where(sub.c.received_at <= run_started).where(not_future(o, current)))
    latest = conn.execute(received.where(o.c.period_kind == "M")).scalar()
    if latest is None:
        latest = conn.execute(received).scalar()
    return None if latest is None else min(int(run_last), int(latest), current)


def rebuild_state(engine: sa.Engine) -> RebuildSummary:
    """Recompute the last processed month from the stored runs and observations.

    For a state gone wrong (a far-future period ingested before such periods were quarantined
    pushed it to 2099-12, and every real month then answered « déjà à jour »): each successful
    run counts only up to the data it could see, never beyond the current month. Findings of
    the months to process again are removed, so the next ``detect`` stores them once."""
    current = current_month_index()
    with db.session_scope(engine) as s:
        st = _claim_state(s)
        before = st.last_month_index
        conn = s.connection()
        covered = []
        for started, last in conn.execute(sa.select(DetectionRun.started_at, DetectionRun.last_period)
                                          .where(DetectionRun.status == "ok")):
            try:
                last_idx = parse_period(last)[2]
            except PeriodError:
                continue
            m = _covered_month(conn, started, last_idx, current)
            if m is not None:
                covered.append(m)
        after = max(covered) if covered else None
        if before is not None and after is not None:
            after = min(after, before)
        f = Finding.__table__
        removed = conn.execute(sa.delete(f).where(f.c.month_index > (after if after is not None else -1))).rowcount
        st.last_month_index = after
        st.updated_at = utcnow()
    return RebuildSummary(before=before, after=after, findings_removed=int(removed or 0))


def latest_data_month(engine: sa.Engine, upto: int | None = None) -> int | None:
    """:func:`default_target` read from the store (no panel loaded): the latest month with
    monthly data up to ``upto``, else the latest period; None without data."""
    o = Observation.__table__
    base = sa.select(sa.func.max(o.c.month_index)).where(o.c.is_current.is_(True)) \
        .where(not_future(o, current_month_index()))
    if upto is not None:
        base = base.where(o.c.month_index <= upto)
    with engine.connect() as conn:
        monthly = conn.execute(base.where(o.c.period_kind == "M")).scalar()
        return int(monthly) if monthly is not None else conn.execute(base).scalar()


def _progress(engine: sa.Engine) -> tuple[int | None, int | None]:
    """The last processed month, and the earliest processed month that received data since
    the last run (:func:`monitor.pipeline.corrections.late_month`)."""
    with engine.connect() as conn:
        last = conn.execute(sa.select(DetectionState.last_month_index).where(DetectionState.id == 1)).scalar()
        return last, late_month(conn, last)


def run_detection(engine: sa.Engine, as_of: str | None = None, progress: Progress | None = None,
                  detectors=None, resolve_after: int = 3, attempts: int = 3) -> DetectionSummary:
    """Detect for every unprocessed month up to ``as_of`` (default: the latest month with data).

    The statistics are computed without holding a transaction; the results are then written
    in one short transaction that first locks the detection state. If another run advanced
    the state meanwhile, or a person changed an alert being updated (optimistic lock), the
    write is rolled back and retried, so nothing is applied twice or overwritten.
    """
    from sqlalchemy.orm.exc import StaleDataError

    t0 = time.perf_counter()
    summary = DetectionSummary()
    as_of_idx = parse_period(as_of)[2] if as_of else None
    if as_of_idx is not None and as_of_idx > current_month_index():
        raise PeriodError(f"période future : {as_of} est postérieure au mois en cours, rien à détecter")
    latest = latest_data_month(engine, as_of_idx)
    if latest is None:
        return summary
    last, late = _progress(engine)
    if late is None and last is not None and last >= (as_of_idx if as_of_idx is not None else latest):
        summary.up_to_date = True        # nothing to do: the panel is not even loaded
        summary.seconds = time.perf_counter() - t0
        return summary
    began = utcnow()                     # what the run can see: the data stored before this
    panel = load_panel(engine, upto_month=as_of_idx)
    if panel.last_month is None:
        return summary
    target = as_of_idx if as_of_idx is not None else default_target(panel)
    for attempt in range(1, attempts + 1):
        if attempt > 1:                  # another run may have moved on meanwhile
            last, late = _progress(engine)
        if late is not None and target < last:
            late = None                  # an as-of before the processed months: corrections wait
        start = int(panel.months.min()) if last is None else last + 1
        if late is not None:
            start = min(start, late)
        if start > target:
            summary.up_to_date = True
            return summary
        months = np.arange(start, target + 1)
        replayed = None
        if late is not None:
            # a late correction: the lifecycle is replayed from the first period on the
            # corrected findings (monitor.pipeline.corrections)
            history = np.arange(int(panel.months.min()), target + 1)
            every = run_detectors(panel, history, detectors, progress)
            before = np.arange(int(panel.months.min()), last + 1)
            replayed = replay_alerts(every[every["month_index"] <= last], before,
                                     reported_by_month(panel, before), resolve_after)
            findings = every[every["month_index"].isin(months)]
        else:
            findings = run_detectors(panel, months, detectors, progress)
            findings = findings[findings["month_index"].isin(months)]
        new_months = months[months > (last if last is not None else -1)]
        try:
            with db.session_scope(engine) as s:
                st = _claim_state(s)
                if st.last_month_index != last:
                    raise DetectionBusy("une autre détection a traité ces périodes entre-temps")
                run = DetectionRun(as_of=month_label(target), first_period=month_label(start),
                                   last_period=month_label(target), status="running", started_at=began)
                s.add(run)
                s.flush()
                corrections = CorrectionStats()
                if late is not None:
                    conn = s.connection()
                    keys = changed_keys(conn, findings, late, last)
                    f = Finding.__table__
                    conn.execute(sa.delete(f).where(f.c.month_index >= late, f.c.month_index <= last))
                    corrections.first_month = late
                    reconcile(s, replayed, keys, late, resolve_after, corrections)
                _store_findings(s.connection(), run.id, findings)
                current = findings[findings["month_index"].isin(new_months)]
                stats = apply_findings(s, combine_findings(current), new_months, resolve_after=resolve_after,
                                       reported=reported_by_month(panel, new_months))
                st.last_month_index = int(target)
                st.updated_at = utcnow()
                run.status, run.finished_at, run.findings = "ok", utcnow(), len(findings)
        except (DetectionBusy, StaleDataError):
            if attempt == attempts:
                raise DetectionBusy("détection interrompue : les alertes ont été modifiées pendant le calcul "
                                    "à plusieurs reprises ; relancez « detect »") from None
            panel.cache.clear()
            continue
        summary.first_month, summary.last_month, summary.months = int(start), int(target), len(months)
        summary.corrections = corrections
        opening = opening_findings(findings)
        summary.findings = opening["category"].value_counts().to_dict()
        summary.opened, summary.reopened, summary.resolved = stats.opened, stats.reopened, stats.resolved
        break
    summary.seconds = time.perf_counter() - t0
    return summary
