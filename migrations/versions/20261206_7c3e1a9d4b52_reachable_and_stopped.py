"""Users get ``reachable``; requests may end ``stopped``.

``users.reachable`` is False from Telegram's 403 (the user blocked the bot) until the user
writes again. ``requests.status`` gains ``stopped`` (the user ended the generation with /stop):
the CHECK constraint is rebuilt (batch mode: SQLite copies the table).

Revision ID: 7c3e1a9d4b52
Revises: 1f5f95cd4bd9
Create Date: 2026-12-06 02:30:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "7c3e1a9d4b52"
down_revision = "1f5f95cd4bd9"
branch_labels = None
depends_on = None

_STATUSES = ("pending", "ok", "error", "denied")


def _status_check(statuses: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


def upgrade():
    """Add ``users.reachable`` and the ``stopped`` status."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reachable", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_requests_request_status"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_requests_request_status"), _status_check((*_STATUSES, "stopped"))
        )


def downgrade():
    """Drop them (stopped rows become ``ok``: they hold what was written)."""
    op.execute("UPDATE requests SET status = 'ok' WHERE status = 'stopped'")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_requests_request_status"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_requests_request_status"), _status_check(_STATUSES)
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("reachable")
