"""Period parsing: the exchange format's YYYY-MM / YYYY-Qn / YYYY, French YYYY-Tn, and what
spreadsheets do to them; scalar and vectorised parsers must agree."""
from __future__ import annotations

import pandas as pd
import pytest

from monitor.vocabulary.periods import (PeriodError, month_index, month_label, month_label_fr, parse_period,
                             parse_periods, period_label_fr)

VALID = [
    # text, canonical, kind, month_index (year * 12 + last month - 1)
    ("2025-03", "2025-03", "M", 2025 * 12 + 2),
    ("2025-12", "2025-12", "M", 2025 * 12 + 11),
    ("2025-3", "2025-03", "M", 2025 * 12 + 2),
    ("2025/03", "2025-03", "M", 2025 * 12 + 2),
    ("202503", "2025-03", "M", 2025 * 12 + 2),
    (" 2025-03 ", "2025-03", "M", 2025 * 12 + 2),
    ("2025-Q2", "2025-Q2", "Q", 2025 * 12 + 5),
    ("2025-q4", "2025-Q4", "Q", 2025 * 12 + 11),
    ("2025Q1", "2025-Q1", "Q", 2025 * 12 + 2),
    ("2025-T2", "2025-Q2", "Q", 2025 * 12 + 5),     # French: trimestre
    ("2025-t3", "2025-Q3", "Q", 2025 * 12 + 8),
    ("2025", "2025", "Y", 2025 * 12 + 11),
    ("2025-03-01", "2025-03", "M", 2025 * 12 + 2),           # a spreadsheet turned 2025-03 into a date
    ("2025-03-01 00:00:00", "2025-03", "M", 2025 * 12 + 2),
]

INVALID = ["2025-13", "2025-00", "2025-Q5", "2025-Q0", "2025-T5", "mars 2025", "03/2025", "25-03",
           "2025-03-15", "2025-03-01 12:30:00", "1989", "2101-01", "", "abcd", "2025-S1",
           "２０２５-03", "٢٠٢٥"]


@pytest.mark.parametrize("text,canon,kind,idx", VALID)
def test_parse_period_valid(text, canon, kind, idx):
    assert parse_period(text) == (canon, kind, idx)


@pytest.mark.parametrize("text", INVALID)
def test_parse_period_invalid_raises_french_message(text):
    with pytest.raises(PeriodError) as exc:
        parse_period(text)
    msg = str(exc.value)
    assert "période" in msg or "année" in msg


def test_parse_periods_matches_scalar_and_keeps_index():
    texts = [v[0] for v in VALID] + INVALID + [None]
    s = pd.Series(texts, index=range(100, 100 + len(texts)), dtype=object)
    out = parse_periods(s)
    assert list(out.columns) == ["period", "period_kind", "month_index"]
    assert list(out.index) == list(s.index)
    for (_, row), text in zip(out.iterrows(), texts):
        try:
            canon, kind, idx = parse_period(text)
        except (PeriodError, TypeError):
            assert pd.isna(row["period"]) and pd.isna(row["period_kind"]) and pd.isna(row["month_index"]), text
        else:
            assert (row["period"], row["period_kind"], int(row["month_index"])) == (canon, kind, idx), text


def test_parse_periods_empty_and_repeated_values():
    out = parse_periods(pd.Series([], dtype=object))
    assert len(out) == 0 and list(out.columns) == ["period", "period_kind", "month_index"]
    s = pd.Series(["2025-T2", "2025-Q2", "2025-02"] * 1000)
    out = parse_periods(s)
    assert out["period"].tolist()[:3] == ["2025-Q2", "2025-Q2", "2025-02"]
    assert out["period"].value_counts().to_dict() == {"2025-Q2": 2000, "2025-02": 1000}


def test_quarter_and_year_are_visible_as_of_their_last_month():
    assert month_index("2025-Q1") == month_index("2025-03")
    assert month_index("2025") == month_index("2025-12")
    assert month_index("2025-T4") == month_index("2025-12")
    assert month_index("2024-12") < month_index("2025-01")


def test_labels():
    idx = month_index("2025-03")
    assert month_label(idx) == "2025-03"
    assert month_label_fr(idx) == "mars 2025"
    assert month_label_fr(month_index("2025-08")) == "août 2025"
    assert period_label_fr("2025-03") == "mars 2025"
    assert period_label_fr("2025-Q1") == "1er trimestre 2025"
    assert period_label_fr("2025-T2") == "2e trimestre 2025"
    assert period_label_fr("2025") == "2025"


def test_periods_are_named_as_the_data_and_a_person_name_them():
    from monitor.vocabulary.periods import (kind_of, period_code, period_name_fr, period_of_fr, period_phrase_fr,
                                            since_fr)

    june, dec, march = 2025 * 12 + 5, 2024 * 12 + 11, 2025 * 12 + 2
    assert [period_code(june, k) for k in "MQY"] == ["2025-06", "2025-Q2", "2025"]
    assert period_code(march, "Q") == "2025-Q1" and period_name_fr(march, "Q") == "1er trimestre 2025"
    assert [period_phrase_fr(june, k) for k in "MQY"] == ["en juin 2025", "au 2e trimestre 2025", "en 2025"]
    assert since_fr(june, "Q") == "depuis le 2e trimestre 2025" and since_fr(dec, "Y") == "depuis 2024"
    assert period_of_fr(2024 * 12 + 7, "M") == "d'août 2024" and period_of_fr(dec, "Y") == "de 2024"
    assert period_of_fr(june, "Q") == "du 2e trimestre 2025"
    assert [kind_of(p) for p in ("2025-03", "2025-Q2", "2024", "n'importe quoi")] == ["M", "Q", "Y", "M"]
