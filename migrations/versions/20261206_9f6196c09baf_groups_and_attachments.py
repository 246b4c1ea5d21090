"""Groups, shared group dialogs, attachments, vision and transcription models.

- ``groups``: the group chats the bot was asked in (title, forum flag, ``active``/``blocked``).
- ``dialogs.chat_id``/``thread_id``: a group's dialog is shared per forum topic (0 outside
  topics) and belongs to no user (``user_id`` becomes nullable); the one-open-dialog index of
  a user now covers private dialogs only.
- ``requests.thread_id``, ``attachment`` (what came with the message, never its bytes) and
  ``attachment_text`` (a document's text); ``error_kind`` gains the attachment and group
  refusals (the CHECK constraint is rebuilt, batch mode: SQLite copies the table).
- ``llm_models.vision`` and ``transcription_model``.

Revision ID: 9f6196c09baf
Revises: 65555edf5e77
Create Date: 2026-12-06 12:39:16
"""

import sqlalchemy as sa
from alembic import op

import shared.models.types

# revision identifiers, used by Alembic.
revision = "9f6196c09baf"
down_revision = "65555edf5e77"
branch_labels = None
depends_on = None

_KINDS = ("blocked", "pending", "limit", "no_model", "model_key", "llm", "gave_up")
_NEW_KINDS = (
    "group_blocked",
    "no_vision",
    "no_voice",
    "too_long",
    "too_large",
    "unsupported_file",
    "transcription",
    "file",
)


def _kind_check(kinds: tuple[str, ...]) -> str:
    return "error_kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade():
    """Add the groups table, the group dialog keys, the attachment columns and model flags."""
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("is_forum", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "blocked",
                name="group_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("first_seen_at", shared.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", shared.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("chat_id", name=op.f("uq_groups_chat_id")),
    )
    with op.batch_alter_table("dialogs", schema=None) as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("chat_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("thread_id", sa.BigInteger(), nullable=True))
        batch_op.drop_index("uq_dialogs_user_id_open")
        batch_op.create_index(
            "uq_dialogs_user_id_open",
            ["user_id"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL AND chat_id IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL AND chat_id IS NULL"),
        )
        batch_op.create_index(
            "uq_dialogs_chat_open",
            ["chat_id", "thread_id"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL AND chat_id IS NOT NULL"),
            postgresql_where=sa.text("ended_at IS NULL AND chat_id IS NOT NULL"),
        )
    with op.batch_alter_table("llm_models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("vision", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("transcription_model", sa.String(length=128), nullable=True))
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thread_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("attachment", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("attachment_text", sa.Text(), nullable=True))
        batch_op.drop_constraint(op.f("ck_requests_error_kind"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_requests_error_kind"), _kind_check((*_KINDS, *_NEW_KINDS))
        )


def downgrade():
    """Drop them; group rows leave with their dialogs, new refusal kinds become ``llm``."""
    op.execute(
        "DELETE FROM requests WHERE dialog_id IN (SELECT id FROM dialogs WHERE chat_id IS NOT NULL)"
    )
    op.execute("DELETE FROM dialogs WHERE chat_id IS NOT NULL")
    kinds = ", ".join(f"'{k}'" for k in _NEW_KINDS)
    op.execute(f"UPDATE requests SET error_kind = 'llm' WHERE error_kind IN ({kinds})")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_requests_error_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_requests_error_kind"), _kind_check(_KINDS))
        batch_op.drop_column("attachment_text")
        batch_op.drop_column("attachment")
        batch_op.drop_column("thread_id")
    with op.batch_alter_table("llm_models", schema=None) as batch_op:
        batch_op.drop_column("transcription_model")
        batch_op.drop_column("vision")
    with op.batch_alter_table("dialogs", schema=None) as batch_op:
        batch_op.drop_index("uq_dialogs_chat_open")
        batch_op.drop_index("uq_dialogs_user_id_open")
        batch_op.create_index(
            "uq_dialogs_user_id_open",
            ["user_id"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )
        batch_op.drop_column("thread_id")
        batch_op.drop_column("chat_id")
        batch_op.alter_column("user_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("groups")
