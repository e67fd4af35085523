"""Data-quality detectors: is the submission itself faulty or missing?

* rejected values: rows quarantined at ingest for a reason that describes a faulty
  submission by a known service (probable percentage, identity break, conflicting
  duplicate, impossible value…), reported at the period they concern;
* missing monthly reports: a service that reported before, whose agrément still runs,
  that was not absorbed by another (register ``absorbed_by``: then nothing is expected after
  its last report), and that sent nothing for a month in which other services reported;
* size jumps without a declared merger: workers followed more than ``jump_ratio`` times
  (or less than 1/``jump_ratio`` times) the median of the previous months, with no merger
  declared in the register around that month. The service-month is kept out of the
  statistical detectors, since every per-worker rate of that month is suspect.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from monitor.vocabulary.catalogue import CATALOGUE
from monitor.vocabulary.formatting import fmt_value, label
from detectors.base import Detector, DetectorConfig, empty_findings
from detectors.panel import Panel, finest_frequency
from monitor.vocabulary.periods import PERIOD_STEP, kind_of, parse_period, period_of_fr, period_phrase_fr

DQ_REASONS = ("probable_percent", "out_of_range", "num_gt_den", "inconsistent",
              "conflicting_duplicate", "negative", "bad_number")


@dataclasses.dataclass(frozen=True)
class QualityConfig(DetectorConfig):
    jump_ratio: float = 1.4
    jump_baseline_months: int = 3
    merger_tolerance_months: int = 1
    mismatch_tolerance: float = 0.10   # coarser value vs its finer values, relative


class RejectedValues(Detector):
    name = "dq_rejected"
    category = "data_quality"
    family = "data_quality"
    Config = QualityConfig

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        q = panel.quarantine
        if q.empty:
            return empty_findings()
        q = q[q["reason_code"].isin(DQ_REASONS) & q["service_id"].isin(panel.services.index)
              & q["month_index"].notna()].copy()
        q["month_index"] = q["month_index"].astype(int)
        q = q[q["month_index"].isin(np.asarray(months))]
        if q.empty:
            return empty_findings()
        q["indicator"] = q["indicator"].fillna("*")
        grouped = q.groupby(["service_id", "indicator", "month_index"], as_index=False).agg(
            reason=("reason", "first"), reason_code=("reason_code", "first"), rows=("reason", "size"),
            raw_value=("raw_value", "first"), period=("period", "first"))
        grouped["period_kind"] = [kind_of(p) for p in grouped["period"]]
        grouped["score"] = 1.0
        grouped["severity"] = np.where(grouped["reason_code"] == "conflicting_duplicate", "medium", "low")
        grouped["explanation"] = [
            f"{label(i)} : valeur {period_of_fr(m, k)} rejetée à l'import ({r}) ; valeur reçue : {v}"
            for i, m, r, v, k in zip(grouped["indicator"], grouped["month_index"], grouped["reason"],
                                     grouped["raw_value"], grouped["period_kind"])]
        grouped["evidence"] = [{"reason_code": c, "rows": int(n), "raw_value": v}
                               for c, n, v in zip(grouped["reason_code"], grouped["rows"], grouped["raw_value"])]
        return self.findings(grouped)


class MissingReports(Detector):
    name = "dq_missing"
    category = "data_quality"
    family = "data_quality"
    Config = QualityConfig

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        """Missing reports at every frequency the panel has: a monthly extract, a quarterly
        one, the yearly survey. A service is expected to report at a frequency once it has,
        while its agrément runs and until it was absorbed, in the periods others reported."""
        obs = panel.observations
        out = [self._missing(panel, obs[obs["period_kind"] == kind], kind, np.asarray(months))
               for kind in ("M", "Q", "Y")]
        out = [f for f in out if len(f)]
        if not out:
            return empty_findings()
        found = pd.concat(out, ignore_index=True)
        # one finding per service and month: the finest frequency that is missing says it
        return found.drop_duplicates(["service_id", "month_index"], keep="first").reset_index(drop=True)

    def _missing(self, panel: Panel, obs: pd.DataFrame, kind: str, months: np.ndarray) -> pd.DataFrame:
        if obs.empty:
            return empty_findings()
        step = PERIOD_STEP[kind]
        present = _presence(obs)
        grid = np.arange(present.index.min(), present.index.max() + 1, step)
        present = present.reindex(grid, fill_value=False)
        reporting = present.any(axis=1)   # periods in which somebody reported
        first = present.idxmax(axis=0)     # first period each service reported
        svc = panel.services.reindex(present.columns)
        end = pd.to_datetime(svc["agrement_end"], errors="coerce")
        end_idx = (end.dt.year * 12 + end.dt.month - 1).fillna(10**9).to_numpy()
        last = present[::-1].idxmax(axis=0)  # last period each service reported
        by = svc.get("absorbed_by", pd.Series(None, index=svc.index, dtype=object))
        absorbed = by.notna() & (by.astype(str).str.strip().str.len() > 0) & (by.astype(str) != "nan")
        end_idx = np.where(absorbed.to_numpy(), np.minimum(end_idx, last.to_numpy()), end_idx)
        # Due from the panel's first period, except for a new service (its agrément began after,
        # and it has not reported before it began; an unknown start counts as new): due from its
        # first report. So a yearly survey missed in the panel's first year is still missed.
        start = pd.to_datetime(svc.get("agrement_start", pd.Series(None, index=svc.index)), errors="coerce")
        start_idx = (start.dt.year * 12 + start.dt.month - 1).to_numpy(dtype=float)
        first_idx = first.to_numpy()
        with np.errstate(invalid="ignore"):
            new = np.isnan(start_idx) | ((start_idx > grid[0]) & (first_idx >= start_idx))
        due_from = np.where(new, first_idx, grid[0])
        m = present.index.to_numpy()[:, None]
        expected = (m >= due_from[None, :]) & (m - step + 1 <= end_idx[None, :]) \
            & reporting.to_numpy()[:, None]
        missing = pd.DataFrame(expected & ~present.to_numpy(), index=present.index, columns=present.columns)
        hit = missing.stack()
        hit = hit[hit].index.to_frame(index=False)
        hit = hit[hit["month_index"].isin(months)]
        if hit.empty:
            return empty_findings()
        hit["indicator"] = "*"
        hit["score"] = 1.0
        hit["severity"] = "medium"
        hit["period_kind"] = kind
        hit["explanation"] = [f"{REPORT_FR[kind]} {period_of_fr(mm, kind)} non reçu (aucun indicateur "
                              f"{ADJECTIVE_FR[kind]} transmis)" for mm in hit["month_index"]]
        hit["evidence"] = [{"rule": f"missing_{REPORT_RULE[kind]}_report"}] * len(hit)
        return self.findings(hit)


def _presence(obs: pd.DataFrame) -> pd.DataFrame:
    """months × services: whether the service reported anything that month (the frame
    ``pd.crosstab(obs.month_index, obs.service_id) > 0``, built with one scatter)."""
    mc, mu = pd.factorize(obs["month_index"], sort=True)
    sc, su = pd.factorize(obs["service_id"], sort=True)
    grid = np.zeros((len(mu), len(su)), dtype=bool)
    grid[mc, sc] = True
    return pd.DataFrame(grid, index=pd.Index(mu, name="month_index"),
                        columns=pd.Index(np.asarray(su, dtype=object), name="service_id", dtype="str"))


REPORT_FR = {"M": "Rapport mensuel", "Q": "Rapport trimestriel", "Y": "Rapport annuel"}
ADJECTIVE_FR = {"M": "mensuel", "Q": "trimestriel", "Y": "annuel"}
REPORT_RULE = {"M": "monthly", "Q": "quarterly", "Y": "yearly"}
BEFORE_FR = {"M": "les mois précédents", "Q": "les trimestres précédents", "Y": "les années précédentes"}


def merger_months(services: pd.DataFrame) -> pd.DataFrame:
    """(service_id, month_index) of every merger declared in the register."""
    rows = []
    col = services.get("merger_periods")
    if col is None:
        return pd.DataFrame(columns=["service_id", "month_index"])
    for sid, text in col.dropna().items():
        for p in str(text).split(";"):
            p = p.strip()
            if p:
                rows.append((sid, parse_period(p)[2]))
    return pd.DataFrame(rows, columns=["service_id", "month_index"])


class SizeJumps(Detector):
    name = "dq_size_jump"
    category = "data_quality"
    family = "data_quality"
    Config = QualityConfig

    def jumps(self, panel: Panel) -> pd.DataFrame:
        cfg: QualityConfig = self.config
        w = panel.wide("workers_followed", statistical=False)
        if w.empty:
            return pd.DataFrame(columns=["service_id", "month_index", "value", "baseline", "ratio"])
        base = w.shift(1).rolling(cfg.jump_baseline_months, min_periods=1).median()
        ratio = w / base
        flag = (ratio > cfg.jump_ratio) | (ratio < 1 / cfg.jump_ratio)
        hit = flag.stack()
        hit = hit[hit].index.to_frame(index=False)
        if hit.empty:
            return pd.DataFrame(columns=["service_id", "month_index", "value", "baseline", "ratio"])
        mergers = merger_months(panel.services)
        if len(mergers):
            tol = cfg.merger_tolerance_months
            near = hit.merge(mergers, on="service_id", suffixes=("", "_merger"))
            near = near[(near["month_index"] - near["month_index_merger"]).abs() <= tol]
            declared = pd.MultiIndex.from_frame(near[["service_id", "month_index"]])
            hit = hit[~pd.MultiIndex.from_frame(hit[["service_id", "month_index"]]).isin(declared)]
        hit["value"] = [w.at[m, s] for m, s in zip(hit["month_index"], hit["service_id"])]
        hit["baseline"] = [base.at[m, s] for m, s in zip(hit["month_index"], hit["service_id"])]
        hit["ratio"] = hit["value"] / hit["baseline"]
        return hit

    def exclusions(self, panel: Panel) -> pd.DataFrame:
        """Every per-worker rate of a month whose size jumped is suspect: the whole
        service-month is kept out of the statistics."""
        return self.jumps(panel)[["service_id", "month_index"]].assign(indicator="*")

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        hit = self.jumps(panel)
        hit = hit[hit["month_index"].isin(np.asarray(months))].copy()
        if hit.empty:
            return empty_findings()
        hit["indicator"] = "workers_followed"
        hit["score"] = np.abs(np.log(hit["ratio"].astype(float)))
        hit["severity"] = "medium"
        hit["expected"] = hit["baseline"]
        kind = panel.period_kind("workers_followed")
        hit["explanation"] = [
            f"Salariés suivis : {fmt_value('workers_followed', v)} {period_phrase_fr(m, kind)} contre "
            f"{fmt_value('workers_followed', b)} {BEFORE_FR[kind]} (×{r:.2f}".replace(".", ",")
            + ") sans fusion déclarée au registre ; probable erreur de saisie"
            for v, m, b, r in zip(hit["value"], hit["month_index"], hit["baseline"], hit["ratio"])]
        hit["evidence"] = [{"ratio": float(r), "baseline": float(b)} for r, b in zip(hit["ratio"], hit["baseline"])]
        return self.findings(hit)


class FrequencyMismatch(Detector):
    """An indicator a service sends at two frequencies (monthly extracts and the yearly survey,
    say) is judged at the finest; the coarser value must agree with the finer ones it covers.

    The finer values of a complete coarser period are aggregated as the indicator's unit says
    (counts summed and proportions recomputed from them, rates per 1,000 of the period added
    up, levels and ratios averaged) and compared with the coarser value: a relative gap above
    ``mismatch_tolerance`` (an absolute one of 5 points for a proportion) is a data-quality
    finding on the coarser period."""
    name = "dq_frequency_mismatch"
    category = "data_quality"
    family = "data_quality"
    Config = QualityConfig

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        cfg: QualityConfig = self.config
        obs = panel.observations
        kinds = obs.groupby(["service_id", "indicator"])["period_kind"].nunique()
        mixed = kinds[kinds > 1].index
        if not len(mixed):
            return empty_findings()
        o = obs.set_index(["service_id", "indicator"]).loc[mixed].reset_index()
        at_finest = pd.concat([finest_frequency(g) for _, g in o.groupby("indicator")])
        fine, coarse = o[at_finest], o[~at_finest & o["month_index"].isin(np.asarray(months))]
        rows = []
        for (sid, code), c in coarse.groupby(["service_id", "indicator"]):
            f = fine[(fine["service_id"] == sid) & (fine["indicator"] == code)]
            ind = CATALOGUE.get(code)
            if ind is None or f.empty:
                continue
            f_step = PERIOD_STEP[f["period_kind"].iloc[0]]
            for r in c.itertuples(index=False):
                step = PERIOD_STEP[r.period_kind]
                part = f[(f["month_index"] > r.month_index - step) & (f["month_index"] <= r.month_index)]
                if len(part) < step // f_step:
                    continue                       # the finer values do not cover the period
                agg = _aggregate(part, ind)
                if not np.isfinite(agg) or not np.isfinite(r.value):
                    continue
                if ind.kind == "proportion":
                    off = abs(r.value - agg) > 0.05
                else:
                    off = abs(r.value - agg) > cfg.mismatch_tolerance * max(abs(agg), 1e-9)
                if off:
                    rows.append({"service_id": sid, "indicator": code, "month_index": int(r.month_index),
                                 "period_kind": r.period_kind, "value": float(r.value), "expected": float(agg),
                                 "fine_kind": part["period_kind"].iloc[0]})
        if not rows:
            return empty_findings()
        hit = pd.DataFrame(rows)
        hit["score"] = (hit["value"] - hit["expected"]).abs() / hit["expected"].abs().clip(lower=1e-9)
        hit["severity"] = "medium"
        hit["explanation"] = [
            f"{label(c)} : valeur {ADJECTIVE_FR[k]}le "
            f"{period_of_fr(m, k)} ({fmt_value(c, v)}) incohérente avec les valeurs {ADJECTIVE_FR[fk]}les "
            f"transmises ({fmt_value(c, e)} une fois agrégées)"
            for c, k, m, v, e, fk in zip(hit["indicator"], hit["period_kind"], hit["month_index"], hit["value"],
                                          hit["expected"], hit["fine_kind"])]
        hit["evidence"] = [{"rule": "frequency_mismatch", "aggregated": float(e), "fine": fk}
                           for e, fk in zip(hit["expected"], hit["fine_kind"])]
        return self.findings(hit.drop(columns=["fine_kind"]))


def _aggregate(part: pd.DataFrame, ind) -> float:
    """The finer values of a period as one value of the coarser period, in the unit's terms."""
    num, den, val = part["numerator"], part["denominator"], part["value"]
    counts = num.notna().all() and den.notna().all()
    if ind.kind == "proportion":
        return float(num.sum() / den.sum()) if counts and den.sum() > 0 else float(val.mean())
    if ind.kind == "rate":
        return float(ind.scale * num.sum() / den.mean()) if counts and den.mean() > 0 else float(val.sum())
    return float(val.mean())
