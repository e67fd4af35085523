"""silences: a dismissal « explication fournie » or « déjà connu » mutes its key until the value
worsens or a date passes; revocable

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 01:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('silences',
    sa.Column('id', BIG, autoincrement=True, nullable=False),
    sa.Column('alert_id', BIG, nullable=False),
    sa.Column('service_id', sa.String(length=14), nullable=False),
    sa.Column('indicator', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('level', sa.Float(), nullable=True),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=254), nullable=True),
    sa.Column('ended_reason', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_silences_alert_id_alerts')),
    sa.ForeignKeyConstraint(['service_id'], ['services.service_id'], name=op.f('fk_silences_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_silences'))
    )
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_silences_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index('ix_silences_key', ['service_id', 'indicator', 'category'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.drop_index('ix_silences_key')
        batch_op.drop_index(batch_op.f('ix_silences_alert_id'))
    op.drop_table('silences')
