"""The log table ``messages`` becomes ``requests`` and records how many answer parts were sent.

The model was renamed ``Message`` → ``Request`` (telebot has its own ``Message``). The table is
rebuilt rather than renamed so every constraint and index carries the new name on SQLite and
PostgreSQL alike; rows are copied with ``delivered_parts`` = 1 for answers already delivered.

Revision ID: 1f5f95cd4bd9
Revises: 2932fa433b69
Create Date: 2026-11-30 06:49:23.440111
"""

import sqlalchemy as sa
from alembic import op

import shared.models.types

# revision identifiers, used by Alembic.
revision = "1f5f95cd4bd9"
down_revision = "2932fa433b69"
branch_labels = None
depends_on = None

_COMMON = (
    "id, dialog_id, number, user_id, update_id, chat_id, telegram_message_id, request_text, "
    "request_at, response_text, response_at, delivered_at, model_id, model_name, mode_name, "
    "prompt_tokens, completion_tokens, cost_usd, status, error, latency_ms"
)


def _copy_sequence(table: str) -> None:
    """Move a PostgreSQL serial past the copied ids (a no-op elsewhere)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )


def upgrade():
    """Create ``requests``, copy the log over, drop ``messages``."""
    op.create_table(
        "requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dialog_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("telegram_message_id", sa.BigInteger(), nullable=True),
        sa.Column("request_text", sa.Text(), nullable=False),
        sa.Column("request_at", shared.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("response_text", sa.Text(), nullable=True),
        sa.Column("response_at", shared.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", shared.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("delivered_parts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.String(length=128), nullable=True),
        sa.Column("mode_name", sa.String(length=64), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(precision=14, scale=8), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "ok",
                "error",
                "denied",
                name="request_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column(
            "error_kind",
            sa.Enum(
                "blocked",
                "pending",
                "limit",
                "no_model",
                "model_key",
                "llm",
                "gave_up",
                name="error_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["dialog_id"],
            ["dialogs.id"],
            name=op.f("fk_requests_dialog_id_dialogs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["llm_models.id"],
            name=op.f("fk_requests_model_id_llm_models"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_requests_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
        sa.UniqueConstraint("dialog_id", "number", name=op.f("uq_requests_dialog_id_number")),
        sa.UniqueConstraint("update_id", name=op.f("uq_requests_update_id")),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_requests_chat_id_delivered_at", ["chat_id", "delivered_at"], unique=False
        )
        batch_op.create_index(
            "ix_requests_model_id_request_at", ["model_id", "request_at"], unique=False
        )
        batch_op.create_index("ix_requests_request_at", ["request_at"], unique=False)
        batch_op.create_index(
            "ix_requests_status_request_at", ["status", "request_at"], unique=False
        )
        batch_op.create_index(
            "ix_requests_user_id_request_at", ["user_id", "request_at"], unique=False
        )

    op.execute(
        f"INSERT INTO requests ({_COMMON}, delivered_parts) SELECT {_COMMON}, "
        "CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END FROM messages"
    )
    _copy_sequence("requests")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_model_id_request_at"))
        batch_op.drop_index(batch_op.f("ix_messages_request_at"))
        batch_op.drop_index(batch_op.f("ix_messages_status_request_at"))
        batch_op.drop_index(batch_op.f("ix_messages_user_id_request_at"))

    op.drop_table("messages")

    # One open dialog per user: close all but the newest where older code left several open.
    op.execute(
        "UPDATE dialogs SET ended_at = started_at WHERE ended_at IS NULL AND id NOT IN "
        "(SELECT MAX(id) FROM dialogs WHERE ended_at IS NULL GROUP BY user_id)"
    )
    with op.batch_alter_table("dialogs", schema=None) as batch_op:
        batch_op.create_index(
            "uq_dialogs_user_id_open",
            ["user_id"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )


def downgrade():
    """Recreate ``messages`` and copy the log back."""
    with op.batch_alter_table("dialogs", schema=None) as batch_op:
        batch_op.drop_index("uq_dialogs_user_id_open")
    op.create_table(
        "messages",
        sa.Column("id", sa.INTEGER(), nullable=False),
        sa.Column("dialog_id", sa.INTEGER(), nullable=False),
        sa.Column("number", sa.INTEGER(), nullable=False),
        sa.Column("user_id", sa.INTEGER(), nullable=False),
        sa.Column("update_id", sa.BIGINT(), nullable=True),
        sa.Column("chat_id", sa.BIGINT(), nullable=True),
        sa.Column("telegram_message_id", sa.BIGINT(), nullable=True),
        sa.Column("request_text", sa.TEXT(), nullable=False),
        sa.Column("request_at", sa.DATETIME(), nullable=False),
        sa.Column("response_text", sa.TEXT(), nullable=True),
        sa.Column("response_at", sa.DATETIME(), nullable=True),
        sa.Column("delivered_at", sa.DATETIME(), nullable=True),
        sa.Column("model_id", sa.INTEGER(), nullable=True),
        sa.Column("model_name", sa.VARCHAR(length=128), nullable=True),
        sa.Column("mode_name", sa.VARCHAR(length=64), nullable=True),
        sa.Column("prompt_tokens", sa.INTEGER(), nullable=True),
        sa.Column("completion_tokens", sa.INTEGER(), nullable=True),
        sa.Column("cost_usd", sa.NUMERIC(precision=14, scale=8), nullable=True),
        sa.Column("status", sa.VARCHAR(length=16), nullable=False),
        sa.Column("error", sa.TEXT(), nullable=True),
        sa.Column("latency_ms", sa.INTEGER(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'ok', 'error', 'denied')",
            name=op.f("ck_messages_message_status"),
        ),
        sa.ForeignKeyConstraint(
            ["dialog_id"],
            ["dialogs.id"],
            name=op.f("fk_messages_dialog_id_dialogs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["llm_models.id"],
            name=op.f("fk_messages_model_id_llm_models"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_messages_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("dialog_id", "number", name=op.f("uq_messages_dialog_id_number")),
        sa.UniqueConstraint("update_id", name=op.f("uq_messages_update_id")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_messages_user_id_request_at"), ["user_id", "request_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_messages_status_request_at"), ["status", "request_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_messages_request_at"), ["request_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_messages_model_id_request_at"), ["model_id", "request_at"], unique=False
        )

    op.execute(f"INSERT INTO messages ({_COMMON}) SELECT {_COMMON} FROM requests")
    _copy_sequence("messages")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_user_id_request_at")
        batch_op.drop_index("ix_requests_status_request_at")
        batch_op.drop_index("ix_requests_request_at")
        batch_op.drop_index("ix_requests_model_id_request_at")
        batch_op.drop_index("ix_requests_chat_id_delivered_at")

    op.drop_table("requests")
