"""SQLAlchemy 2 models: the project's whole schema.

Schema changes go through Alembic migrations (monitor/migrations); ``spsti-monitor init``
applies them. Observations are versioned: a correction is a new row with a higher version,
the previous one keeps its data and loses ``is_current``.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from monitor.vocabulary.statuses import AlertStatus, FollowUpStatus

# Integer primary keys that are 64-bit on PostgreSQL and rowid aliases on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class Region(Base):
    __tablename__ = "regions"
    code: Mapped[str] = mapped_column(sa.String(2), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    directorate: Mapped[str] = mapped_column(sa.String(20))


class IndicatorDef(Base):
    __tablename__ = "indicators"
    code: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    label_fr: Mapped[str] = mapped_column(sa.String(200))
    label_en: Mapped[str] = mapped_column(sa.String(200))
    unit: Mapped[str] = mapped_column(sa.String(40))
    kind: Mapped[str] = mapped_column(sa.String(20))
    worse: Mapped[str] = mapped_column(sa.String(10))
    scale: Mapped[float] = mapped_column(sa.Float, default=1.0)


class Service(Base):
    __tablename__ = "services"
    service_id: Mapped[str] = mapped_column(sa.String(14), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    region_code: Mapped[str] = mapped_column(sa.ForeignKey("regions.code"), index=True)
    departments: Mapped[str] = mapped_column(sa.String(200))
    workers_followed: Mapped[int] = mapped_column(sa.Integer)
    companies: Mapped[int] = mapped_column(sa.Integer)
    agrement_start: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    agrement_end: Mapped[date] = mapped_column(sa.Date)
    certification_level: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    certification_end: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    max_workers_per_physician_fte: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    cotisation_per_worker: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    merger_periods: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    absorbed_by: Mapped[str | None] = mapped_column(sa.String(14), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class ServiceDepartment(Base):
    __tablename__ = "service_departments"
    service_id: Mapped[str] = mapped_column(sa.ForeignKey("services.service_id"), primary_key=True)
    department_code: Mapped[str] = mapped_column(sa.String(3), primary_key=True, index=True)


class Submission(Base):
    """One received file (or pull), with what became of its rows."""
    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(sa.String(200), default="cli")
    file_name: Mapped[str] = mapped_column(sa.String(500))
    checksum: Mapped[str] = mapped_column(sa.String(64), index=True)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(sa.String(20))  # ingested | duplicate | failed
    rows_total: Mapped[int] = mapped_column(sa.Integer, default=0)
    accepted: Mapped[int] = mapped_column(sa.Integer, default=0)
    rejected: Mapped[int] = mapped_column(sa.Integer, default=0)
    unchanged: Mapped[int] = mapped_column(sa.Integer, default=0)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class Observation(Base):
    __tablename__ = "observations"
    __table_args__ = (
        sa.UniqueConstraint("service_id", "indicator", "period", "version",
                            name="uq_observations_cell_version"),
        sa.Index("ix_observations_current", "indicator", "month_index", "is_current"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(sa.ForeignKey("services.service_id"))
    indicator: Mapped[str] = mapped_column(sa.ForeignKey("indicators.code"))
    period: Mapped[str] = mapped_column(sa.String(7))
    period_kind: Mapped[str] = mapped_column(sa.String(1))
    month_index: Mapped[int] = mapped_column(sa.Integer)
    value: Mapped[float] = mapped_column(sa.Float)
    numerator: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    denominator: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    is_current: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submissions.id"))
    row_number: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)


class Quarantine(Base):
    """A rejected row, kept raw, with a reason a person can read."""
    __tablename__ = "quarantine"
    __table_args__ = (sa.Index("ix_quarantine_service_period", "service_id", "month_index"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submissions.id"), index=True)
    row_number: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    raw: Mapped[dict] = mapped_column(sa.JSON)
    reason_code: Mapped[str] = mapped_column(sa.String(40), index=True)
    reason: Mapped[str] = mapped_column(sa.Text)
    service_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    indicator: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    period: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    month_index: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class DetectionRun(Base):
    __tablename__ = "detection_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    as_of: Mapped[str | None] = mapped_column(sa.String(7), nullable=True)
    first_period: Mapped[str | None] = mapped_column(sa.String(7), nullable=True)
    last_period: Mapped[str | None] = mapped_column(sa.String(7), nullable=True)
    findings: Mapped[int] = mapped_column(sa.Integer, default=0)
    status: Mapped[str] = mapped_column(sa.String(20), default="running")
    config: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class DetectionState(Base):
    """Which month each detection run has processed up to (incremental detection)."""
    __tablename__ = "detection_state"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    last_month_index: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class Finding(Base):
    __tablename__ = "findings"
    __table_args__ = (sa.Index("ix_findings_key", "service_id", "indicator", "category", "month_index"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("detection_runs.id"), index=True)
    service_id: Mapped[str] = mapped_column(sa.ForeignKey("services.service_id"))
    indicator: Mapped[str] = mapped_column(sa.String(64))
    period: Mapped[str] = mapped_column(sa.String(7))
    month_index: Mapped[int] = mapped_column(sa.Integer)
    category: Mapped[str] = mapped_column(sa.String(20))
    detector: Mapped[str] = mapped_column(sa.String(60))
    detector_version: Mapped[str] = mapped_column(sa.String(20))
    score: Mapped[float] = mapped_column(sa.Float)
    severity: Mapped[str] = mapped_column(sa.String(10))
    value: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    expected: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    lower: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    upper: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    explanation: Mapped[str] = mapped_column(sa.Text)
    evidence: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)


class Alert(Base):
    """One alert per (service, indicator, category) at a time; ``version`` guards concurrent edits."""
    __tablename__ = "alerts"
    __table_args__ = (sa.Index("ix_alerts_key", "service_id", "indicator", "category"),
                      sa.Index("ix_alerts_status", "status"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(sa.ForeignKey("services.service_id"))
    indicator: Mapped[str] = mapped_column(sa.String(64))
    category: Mapped[str] = mapped_column(sa.String(20))
    status: Mapped[str] = mapped_column(sa.String(20), default=AlertStatus.OPEN.value)
    severity: Mapped[str] = mapped_column(sa.String(10))
    score: Mapped[float] = mapped_column(sa.Float)
    detectors: Mapped[str] = mapped_column(sa.String(300))
    explanation: Mapped[str] = mapped_column(sa.Text)
    opened_period: Mapped[str] = mapped_column(sa.String(7))
    opened_month_index: Mapped[int] = mapped_column(sa.Integer)
    last_period: Mapped[str] = mapped_column(sa.String(7))
    last_month_index: Mapped[int] = mapped_column(sa.Integer)
    normal_streak: Mapped[int] = mapped_column(sa.Integer, default=0)
    assignee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), nullable=True)
    snoozed_until: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    dismiss_reason: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    __mapper_args__ = {"version_id_col": version}


class AlertEvent(Base):
    """Append-only audit log of everything that happened to an alert."""
    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id"), index=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(sa.String(200))   # user email or "detection"
    kind: Mapped[str] = mapped_column(sa.String(30))     # opened, updated, resolved, reopened, status, ...
    from_status: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    to_status: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    period: Mapped[str | None] = mapped_column(sa.String(7), nullable=True)
    severity: Mapped[str | None] = mapped_column(sa.String(10), nullable=True)
    comment: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    details: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(20))
    regions: Mapped[str] = mapped_column(sa.String(200), default="")
    digest: Mapped[str] = mapped_column(sa.String(10), default="daily")
    min_severity: Mapped[str] = mapped_column(sa.String(10), default="medium")
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    failed_logins: Mapped[int] = mapped_column(sa.Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    last_digest_event_id: Mapped[int | None] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
    last_digest_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class FollowUp(Base):
    """An inspection follow-up (suite) decided on one or more alerts."""
    __tablename__ = "follow_ups"
    __table_args__ = (sa.Index("ix_follow_ups_service", "service_id"),
                      sa.Index("ix_follow_ups_status_due", "status", "due_date"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(sa.ForeignKey("services.service_id"))
    kind: Mapped[str] = mapped_column(sa.String(40))          # code, see alerts.followups.KINDS
    legal_reference: Mapped[str | None] = mapped_column(sa.String(80), nullable=True)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), nullable=True)
    due_date: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    status: Mapped[str] = mapped_column(sa.String(20), default=FollowUpStatus.A_FAIRE.value)
    notes: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_by: Mapped[str] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class FollowUpAlert(Base):
    __tablename__ = "follow_up_alerts"
    follow_up_id: Mapped[int] = mapped_column(sa.ForeignKey("follow_ups.id"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id"), primary_key=True, index=True)


class FollowUpEvent(Base):
    """Append-only audit log of follow-ups (like alert_events)."""
    __tablename__ = "follow_up_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    follow_up_id: Mapped[int] = mapped_column(sa.ForeignKey("follow_ups.id"), index=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(254))
    kind: Mapped[str] = mapped_column(sa.String(30))
    from_value: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    to_value: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    comment: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class DigestOutbox(Base):
    """One digest per user and window, built before sending (idempotency key unique)."""
    __tablename__ = "digest_outbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(sa.String(120), unique=True)
    from_event_id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
    to_event_id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
    recipient: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(300))
    body_text: Mapped[str] = mapped_column(sa.Text)
    body_html: Mapped[str] = mapped_column(sa.Text)
    alert_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")   # pending | sent | failed
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)


class SourcePull(Base):
    """One pull of a configured source (drop folder, HTTP endpoint, SQL query)."""
    __tablename__ = "source_pulls"
    __table_args__ = (sa.Index("ix_source_pulls_source_started", "source", "started_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(20))           # folder | http | sql
    started_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="running")  # ok | not_modified | error | running
    files: Mapped[int] = mapped_column(sa.Integer, default=0)
    accepted: Mapped[int] = mapped_column(sa.Integer, default=0)
    rejected: Mapped[int] = mapped_column(sa.Integer, default=0)
    unchanged: Mapped[int] = mapped_column(sa.Integer, default=0)
    checksum: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    etag: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)
    last_modified: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class JobRun(Base):
    """One run of a scheduled job: start, end, outcome, counts, error text."""
    __tablename__ = "job_runs"
    __table_args__ = (sa.Index("ix_job_runs_job_started", "job_id", "started_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(sa.String(200))
    scheduled_for: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    outcome: Mapped[str] = mapped_column(sa.String(20), default="running")  # ok | error | running
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1)
    counts: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class UserEvent(Base):
    """Append-only audit log of account creation and changes (migration 0003)."""
    __tablename__ = "user_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(254))
    kind: Mapped[str] = mapped_column(sa.String(30))     # created, role, regions, digest, ...
    from_value: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    to_value: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    comment: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class ServiceEvent(Base):
    """Append-only audit log of register changes: a service created, moved to another region,
    renamed, its agrément changed… (migration 0006)."""
    __tablename__ = "service_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(sa.ForeignKey("services.service_id"), index=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(254))
    kind: Mapped[str] = mapped_column(sa.String(40))     # created, or the changed field
    from_value: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    to_value: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    comment: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class Silence(Base):
    """A dismissal « explication fournie par le service » or « déjà connu » mutes its service,
    indicator and category until the value worsens beyond the dismissed level or a date passes,
    like an Alertmanager silence; visible with who and why, and revocable (migration 0005)."""
    __tablename__ = "silences"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id"), index=True)
    service_id: Mapped[str] = mapped_column(sa.ForeignKey("services.service_id"))
    indicator: Mapped[str] = mapped_column(sa.String(64))
    category: Mapped[str] = mapped_column(sa.String(20))
    level: Mapped[float | None] = mapped_column(sa.Float, nullable=True)   # the dismissed value
    until: Mapped[date] = mapped_column(sa.Date)
    reason: Mapped[str] = mapped_column(sa.String(40))
    comment: Mapped[str] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(sa.String(254), nullable=True)
    ended_reason: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)   # revoked, worsened

    __table_args__ = (sa.Index("ix_silences_key", "service_id", "indicator", "category"),)


class Objective(Base):
    """A CPOM objective: a target for one service, indicator and year (migration 0008).
    A later file replaces the target of the same key; the submission says where it came from."""
    __tablename__ = "objectives"
    __table_args__ = (sa.UniqueConstraint("service_id", "indicator", "year", name="uq_objectives_key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(sa.ForeignKey("services.service_id"))
    indicator: Mapped[str] = mapped_column(sa.ForeignKey("indicators.code"))
    year: Mapped[int] = mapped_column(sa.Integer)
    target: Mapped[float] = mapped_column(sa.Float)
    label: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submissions.id"))
    row_number: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class ProgrammeVersion(Base):
    """One save of a region's control programme for a year; append-only (migration 0008):
    the newest version is the programme, the older ones are its audit trail. ``rows`` holds
    what the programme shows (rank, service, score, selected, reasons, the manager's reason
    for a changed selection)."""
    __tablename__ = "programme_versions"
    __table_args__ = (sa.Index("ix_programme_versions_key", "region_code", "year"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    region_code: Mapped[str] = mapped_column(sa.ForeignKey("regions.code"))
    year: Mapped[int] = mapped_column(sa.Integer)
    capacity: Mapped[int] = mapped_column(sa.Integer)
    weights: Mapped[dict] = mapped_column(sa.JSON)
    rows: Mapped[list] = mapped_column(sa.JSON)
    saved_by: Mapped[str] = mapped_column(sa.String(254))
    saved_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    comment: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class WebSession(Base):
    """A dashboard sign-in (migration 0007): the browser holds a signed cookie carrying a random
    token; only the token's SHA-256 is stored. Valid while not revoked, used within the idle
    delay, younger than the absolute delay, and while the account's password, activity and
    lock are those it was opened with (``monitor.accounts.sessions``)."""
    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    password_tag: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
