"""audit hardening: register changes are audited (service_events); no SQL path rewrites or empties
an audit table (SQLite REPLACE, PostgreSQL TRUNCATE)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 02:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
NEW_TABLE = "service_events"
AUDIT_TABLES = ("alert_events", "follow_up_events", "user_events", NEW_TABLE)


def upgrade() -> None:
    op.create_table(NEW_TABLE,
    sa.Column('id', BIG, autoincrement=True, nullable=False),
    sa.Column('service_id', sa.String(length=14), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('from_value', sa.Text(), nullable=True),
    sa.Column('to_value', sa.Text(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['service_id'], ['services.service_id'], name=op.f('fk_service_events_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_events'))
    )
    with op.batch_alter_table(NEW_TABLE, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_events_service_id'), ['service_id'], unique=False)

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {NEW_TABLE}_no_{action.lower()} BEFORE {action} ON {NEW_TABLE} "
                       f"BEGIN SELECT RAISE(ABORT, '{NEW_TABLE} is append-only'); END")
        # INSERT OR REPLACE / REPLACE INTO with an existing id deletes the old row by conflict
        # resolution, which fires no DELETE trigger (unless recursive_triggers is on): refuse
        # the insert itself when its id is taken. The id is the tables' only unique key.
        for table in AUDIT_TABLES:
            op.execute(f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                       f"WHEN EXISTS (SELECT 1 FROM {table} WHERE id = NEW.id) "
                       f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
    elif dialect == "postgresql":
        op.execute("CREATE OR REPLACE FUNCTION spsti_append_only() RETURNS trigger AS $$ "
                   "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql")
        op.execute(f"CREATE TRIGGER {NEW_TABLE}_append_only BEFORE UPDATE OR DELETE ON {NEW_TABLE} "
                   f"FOR EACH ROW EXECUTE FUNCTION spsti_append_only()")
        # row triggers do not fire for TRUNCATE: a statement trigger refuses it
        for table in AUDIT_TABLES:
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION spsti_append_only()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in AUDIT_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_replace")
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {NEW_TABLE}_no_{action}")
    elif dialect == "postgresql":
        for table in AUDIT_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {NEW_TABLE}_append_only ON {NEW_TABLE}")
    with op.batch_alter_table(NEW_TABLE, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_events_service_id'))
    op.drop_table(NEW_TABLE)
