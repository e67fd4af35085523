"""Look and feel shared by the pages: DSFR colours, the header, badges, French formatting,
links between pages and the handling of service-layer errors. No data access here."""
from __future__ import annotations

import html
import math
from datetime import date, datetime
from typing import Callable

import streamlit as st

from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.errors import ServiceError
from dashboard import state
from monitor.vocabulary.catalogue import REGIONS
from monitor.vocabulary.labels import CATEGORY_FR, SEVERITY_FR

# DSFR (système de design de l'État) colours
BLUE = "#000091"          # bleu France
BLUE_LIGHT = "#E3E3FD"    # bleu France 950
RED = "#E1000F"           # rouge Marianne
GREY_DARK = "#3A3A3A"
GREY = "#666666"
GREY_MID = "#929292"
GREY_LIGHT = "#DDDDDD"
GREY_BG = "#F6F6F6"
SEVERITY_COLOURS = {"high": RED, "medium": "#B34000", "low": "#0063CB"}
DETECTOR_LABELS = {
    "peer_funnel": "comparaison aux pairs (entonnoir)",
    "temporal_cusum": "dérive par rapport à son passé (CUSUM)",
    "multivariate_ecod": "combinaison inhabituelle d'indicateurs (ECOD)",
    "rules_thresholds": "seuil réglementaire",
    "rules_agrement": "agrément et certification",
    "dq_rejected": "lignes rejetées à la réception",
    "dq_missing": "rapport mensuel manquant",
    "dq_size_jump": "saut d'effectif non déclaré",
}
ROLE_LABELS = {"agent": "Agent de contrôle", "manager": "Responsable de pôle", "national": "Niveau national (DGT)",
               "admin": "Administrateur"}

# page files, relative to app.py (st.switch_page / st.page_link targets)
PAGE_QUEUE = "views/queue.py"
PAGE_ALERT = "views/alert.py"
PAGE_SERVICE = "views/service.py"
PAGE_OVERVIEW = "views/overview.py"
PAGE_FOLLOW_UPS = "views/followups.py"
PAGE_DATA = "views/data.py"
PAGE_ADMIN = "views/admin.py"
PAGE_PROGRAMME = "views/programme.py"

_CSS = f"""
<style>
  :root {{ --bleu-france: {BLUE}; --rouge-marianne: {RED}; }}
  .spsti-band {{ border-bottom: 1px solid {GREY_LIGHT}; margin: -1rem 0 0.9rem 0; padding-bottom: 0.5rem; }}
  .spsti-band span {{ display: inline-block; width: 54px; height: 6px; vertical-align: middle;
                      background: linear-gradient(90deg, {BLUE} 0 33.3%, #FFFFFF 33.3% 66.6%, {RED} 66.6% 100%);
                      outline: 1px solid {GREY_LIGHT}; }}
  .spsti-band b {{ margin-left: 0.6rem; font-size: 0.8rem; letter-spacing: .04em; color: #161616;
                   text-transform: uppercase; vertical-align: middle; }}
  .spsti-kicker {{ color: {GREY}; font-size: 0.85rem; letter-spacing: .02em; margin-bottom: -0.4rem; }}
  .spsti-badge {{ display: inline-block; padding: 0.1rem 0.55rem; margin: 0 0.35rem 0.35rem 0;
                  border-radius: 0.25rem; font-size: 0.85rem; font-weight: 600; line-height: 1.5rem;
                  border: 1px solid currentColor; background: #FFFFFF; }}
  .spsti-badge.sev-high {{ color: {RED}; background: #FFE9E9; }}
  .spsti-badge.sev-medium {{ color: #B34000; background: #FFE9E6; }}
  .spsti-badge.sev-low {{ color: #0063CB; background: #E8EDFF; }}
  .spsti-badge.neutral {{ color: {GREY_DARK}; background: {GREY_BG}; border-color: {GREY_LIGHT}; }}
  .spsti-badge.info {{ color: {BLUE}; background: {BLUE_LIGHT}; border-color: {BLUE_LIGHT}; }}
  .spsti-facts dt {{ color: {GREY}; font-size: 0.8rem; margin-top: 0.4rem; }}
  .spsti-facts dd {{ margin: 0; font-weight: 500; }}
  .spsti-signout button {{ background: #FFFFFF; color: {BLUE}; border: 1px solid {BLUE}; padding: 0.3rem 0.9rem;
                           border-radius: 0.25rem; font-size: 0.9rem; cursor: pointer; }}
  div[data-testid="stMetricValue"] {{ color: {BLUE}; }}
  h1, h2, h3 {{ color: #161616; }}
  h1 {{ font-size: 2.1rem !important; line-height: 1.25 !important; }}
  h2 {{ font-size: 1.45rem !important; }}
  section[data-testid="stSidebar"] {{ border-right: 1px solid {GREY_LIGHT}; }}
</style>
"""


def style() -> None:
    st.html(_CSS)


def esc(text) -> str:
    return html.escape("" if text is None else str(text))


# Every ASCII punctuation character may be backslash-escaped in CommonMark and then shows as
# itself; escaping all of those that mean something somewhere (emphasis, links, HTML, tables,
# math, Streamlit's :red[…] and :material/…: directives, GFM autolinks www.x.fr, http://,
# a@b.fr, entities &amp;) leaves nothing to interpret. Harmless ones stay readable.
_MD_SPECIAL = frozenset("\\`*_{}[]<>()#+!|~$:.@&=^")


def md_escape(text: str | None) -> str:
    """User or data text (service names, notes, comments, e-mails…) shown through a Markdown
    element (st.markdown, st.caption, st.info, titles, labels) exactly as typed: the one
    escaping helper of the pages, never interpreted as Markdown, HTML or a link."""
    if text is None:
        return ""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text))


def fr_days(x: float | None) -> str:
    """« 2,5 j », « — » when unknown."""
    if x is None or x != x:
        return "—"
    return f"{x:.1f}".replace(".", ",") + "\u00a0j"


def show_flash() -> None:
    """Show, once, the message an action left for the page that follows it (state.flash)."""
    item = st.session_state.pop("_flash", None)
    if item:
        kind, message = item
        getattr(st, kind, st.info)(md_escape(message))


def header(title: str, kicker: str | None = None, caption: str | None = None) -> None:
    st.html('<div class="spsti-band"><span></span><b>Supervision des SPSTI</b></div>')
    if kicker:
        st.html(f'<div class="spsti-kicker">{esc(kicker)}</div>')
    st.title(md_escape(title), anchor=False)
    if caption:
        st.caption(caption)


def badges(items: list[tuple[str, str]]) -> None:
    """A row of badges: (text, css class) with classes sev-high, sev-medium, sev-low, neutral, info."""
    st.html("".join(f'<span class="spsti-badge {esc(cls)}">{esc(text)}</span>' for text, cls in items))


def facts(pairs: list[tuple[str, str]]) -> None:
    """A definition list of labelled values (escaped)."""
    body = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs)
    st.html(f'<dl class="spsti-facts">{body}</dl>')


def fr_int(n) -> str:
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "—"
    return f"{int(n):,}".replace(",", "\u202f")


def fr_date(d) -> str:
    if d is None or (isinstance(d, float) and not math.isfinite(d)):
        return "—"
    try:
        import pandas as pd

        if d is pd.NaT:
            return "—"
    except Exception:
        pass
    return timefmt.fr_date(d)


def fr_datetime(d: datetime | None) -> str:
    return timefmt.fr_datetime(d) if d is not None else "—"


def detectors_text(names: str) -> str:
    return ", ".join(DETECTOR_LABELS.get(n, n) for n in (names or "").split(";") if n) or "—"


def period_text(period: str | None) -> str:
    """« septembre 2026 » for 2026-09 (quarters and years as they are)."""
    from monitor.vocabulary.periods import period_label_fr

    if not period:
        return "—"
    try:
        return period_label_fr(period)
    except Exception:
        return period


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


# the vocabulary's labels, as a table header or a badge writes them
SEVERITY_LABELS = {k: upper_first(v) for k, v in SEVERITY_FR.items()}
CATEGORY_LABELS = {k: upper_first(v) for k, v in CATEGORY_FR.items()}


def region_name(code: str) -> str:
    return REGIONS.get(code, (code, ""))[0]


def regions_text(user) -> str:
    if user.regions is None:
        return "toutes les régions"
    return ", ".join(f"{region_name(c)} ({c})" for c in user.regions) or "aucune région"


def can_write(user) -> bool:
    return user.role in ("agent", "manager", "admin")


def read_only_notice(user, what: str = "les alertes") -> None:
    st.info(f"Lecture seule : le rôle « {ROLE_LABELS.get(user.role, user.role)} » permet de consulter "
            f"{what} de toutes les régions, sans agir dessus.", icon=":material/visibility:")


def run_action(action: Callable[[], object], success: str) -> None:
    """Call a service function; on success keep a message for the next run and rerun, on a
    refusal (access, concurrent change, invalid action) show its French message.

    After a success the versions remembered for optimistic locking are forgotten: the next
    display reads the record's new version."""
    try:
        action()
    except ServiceError as exc:
        error(exc.message)
        return
    except ValueError as exc:        # e.g. users.UserError
        error(upper_first(str(exc)))
        return
    for key in [k for k in st.session_state.keys() if str(k).startswith(SEEN_PREFIX)]:
        del st.session_state[key]
    state.flash(success)
    st.rerun()


SEEN_PREFIX = "seen_version_"


def seen_version(kind: str, record_id: int, current: int) -> int:
    """The version of a record as the user last saw it (for ``expected_version``): the one
    displayed by the previous run, or the current one on a first display."""
    return st.session_state.get(f"{SEEN_PREFIX}{kind}_{record_id}", current)


def remember_version(kind: str, record_id: int, version: int) -> None:
    st.session_state[f"{SEEN_PREFIX}{kind}_{record_id}"] = version


def error(message: str) -> None:
    """A French error message from the service layer (names in it are shown literally)."""
    st.error(md_escape(message), icon=":material/error:")


_MAX_ID = 2 ** 63 - 1          # the largest identifier the database can hold (BIGINT)


def query_int(name: str) -> int | None:
    """A record number from the address (``?id=12``), or None when absent or not a valid one
    (a word, a negative number, or one too large for the database: ``?id=99999999999999999999``)."""
    raw = st.query_params.get(name)
    text = "" if raw is None else str(raw).strip()
    if not text or len(text) > 19 or not (text.isascii() and text.isdigit()):   # int() takes « ٣ »
        return None
    value = int(text)
    return value if 1 <= value <= _MAX_ID else None


def query_invalid(name: str) -> str | None:
    """The text of a parameter given in the address that :func:`query_int` refuses, else None."""
    raw = st.query_params.get(name)
    if raw in (None, "") or query_int(name) is not None:
        return None
    return str(raw)[:40]


def query_str(name: str) -> str | None:
    raw = st.query_params.get(name)
    return str(raw).strip()[:200] if raw not in (None, "") else None


def open_alert(alert_id: int) -> None:
    st.switch_page(PAGE_ALERT, query_params={"id": str(int(alert_id))})


def open_service(service_id: str) -> None:
    st.switch_page(PAGE_SERVICE, query_params={"siret": str(service_id)})


def today() -> date:
    return timefmt.today()


def selected_row(event) -> int | None:
    """Index of the row selected in an st.dataframe with on_select, or None."""
    try:
        rows = event.selection.rows
    except AttributeError:
        try:
            rows = event["selection"]["rows"]
        except (KeyError, TypeError):
            return None
    return rows[0] if rows else None
