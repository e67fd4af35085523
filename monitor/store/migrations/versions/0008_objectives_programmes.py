"""CPOM objectives and saved control programmes (append-only: each save is a new version)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 02:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
APPEND_ONLY = "programme_versions"


def upgrade() -> None:
    op.create_table('objectives',
    sa.Column('id', BIG, autoincrement=True, nullable=False),
    sa.Column('service_id', sa.String(length=14), nullable=False),
    sa.Column('indicator', sa.String(length=64), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('target', sa.Float(), nullable=False),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('submission_id', BIG, nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.service_id'], name=op.f('fk_objectives_service_id_services')),
    sa.ForeignKeyConstraint(['indicator'], ['indicators.code'], name=op.f('fk_objectives_indicator_indicators')),
    sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'], name=op.f('fk_objectives_submission_id_submissions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_objectives')),
    sa.UniqueConstraint('service_id', 'indicator', 'year', name='uq_objectives_key'),
    )
    op.create_table(APPEND_ONLY,
    sa.Column('id', BIG, autoincrement=True, nullable=False),
    sa.Column('region_code', sa.String(length=2), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('weights', sa.JSON(), nullable=False),
    sa.Column('rows', sa.JSON(), nullable=False),
    sa.Column('saved_by', sa.String(length=254), nullable=False),
    sa.Column('saved_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['region_code'], ['regions.code'], name=op.f('fk_programme_versions_region_code_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_programme_versions')),
    )
    with op.batch_alter_table(APPEND_ONLY, schema=None) as batch_op:
        batch_op.create_index('ix_programme_versions_key', ['region_code', 'year'], unique=False)

    # append-only, like the other audit tables (0002, 0003)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {APPEND_ONLY}_no_{action.lower()} BEFORE {action} ON {APPEND_ONLY} "
                       f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY} is append-only'); END")
    elif dialect == "postgresql":
        op.execute("CREATE OR REPLACE FUNCTION spsti_append_only() RETURNS trigger AS $$ "
                   "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql")
        op.execute(f"CREATE TRIGGER {APPEND_ONLY}_append_only BEFORE UPDATE OR DELETE ON {APPEND_ONLY} "
                   f"FOR EACH ROW EXECUTE FUNCTION spsti_append_only()")
        op.execute(f"CREATE TRIGGER {APPEND_ONLY}_no_truncate BEFORE TRUNCATE ON {APPEND_ONLY} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION spsti_append_only()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {APPEND_ONLY}_no_{action}")
    elif dialect == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {APPEND_ONLY}_append_only ON {APPEND_ONLY}")
        op.execute(f"DROP TRIGGER IF EXISTS {APPEND_ONLY}_no_truncate ON {APPEND_ONLY}")
    with op.batch_alter_table(APPEND_ONLY, schema=None) as batch_op:
        batch_op.drop_index('ix_programme_versions_key')
    op.drop_table(APPEND_ONLY)
    op.drop_table('objectives')
