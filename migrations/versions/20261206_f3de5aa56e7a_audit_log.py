"""The admin audit log: ``audit_entries``, one row per change an admin made to one object.

Written by ``shared.services.audit`` in the same transaction as the change. Indexed on time (the
log is read newest first) and on the object (``kind``, ``object_id``: one object's history).

Revision ID: f3de5aa56e7a
Revises: 7c3e1a9d4b52
Create Date: 2026-12-06 07:23:23
"""

import sqlalchemy as sa
from alembic import op

import shared.models.types

# revision identifiers, used by Alembic.
revision = "f3de5aa56e7a"
down_revision = "7c3e1a9d4b52"
branch_labels = None
depends_on = None


def upgrade():
    """Create ``audit_entries`` and its two indexes."""
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", shared.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column(
            "action",
            sa.Enum(
                "create",
                "update",
                "delete",
                name="audit_action",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entries_at", ["at"], unique=False)
        batch_op.create_index(
            "ix_audit_entries_kind_object_id", ["kind", "object_id"], unique=False
        )


def downgrade():
    """Drop ``audit_entries`` (the log is lost)."""
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_kind_object_id")
        batch_op.drop_index("ix_audit_entries_at")
    op.drop_table("audit_entries")
