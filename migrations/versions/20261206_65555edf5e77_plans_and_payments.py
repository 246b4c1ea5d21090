"""Plans, payments and plan changes; users get ``plan_id``, ``plan_expires_at``, ``plan_reminded_at``.

``plans`` (limits, allowed models through ``plan_models``, a price in Stars, at most one
default), ``payments`` (one row per Telegram charge id), ``plan_changes`` (the history of a
user's plan). Existing users keep ``plan_id`` null, which means the default plan; the seeded
«Free» and «Paid» plans are created by ``flask init`` (``shared.services.catalog``).

Revision ID: 65555edf5e77
Revises: f3de5aa56e7a
Create Date: 2026-12-06 10:11:00.329663

"""

import sqlalchemy as sa
from alembic import op

import shared.models.types

# revision identifiers, used by Alembic.
revision = "65555edf5e77"
down_revision = "f3de5aa56e7a"
branch_labels = None
depends_on = None


def upgrade():
    """Create the plan and payment tables and the users' plan columns."""
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("requests_per_day", sa.Integer(), nullable=True),
        sa.Column("tokens_per_day", sa.BigInteger(), nullable=True),
        sa.Column("tokens_per_month", sa.BigInteger(), nullable=True),
        sa.Column("cost_usd_per_month", sa.Numeric(precision=12, scale=4), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("price_stars", sa.Integer(), nullable=True),
        sa.Column("period_days", sa.Integer(), nullable=False),
        sa.Column("fallback_model_id", sa.Integer(), nullable=True),
        sa.Column("created_at", shared.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["fallback_model_id"],
            ["llm_models.id"],
            name=op.f("fk_plans_fallback_model_id_llm_models"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("name", name=op.f("uq_plans_name")),
    )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.create_index(
            "uq_plans_single_default",
            ["is_default"],
            unique=True,
            sqlite_where=sa.text("is_default"),
            postgresql_where=sa.text("is_default"),
        )

    op.create_table(
        "plan_models",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["llm_models.id"],
            name=op.f("fk_plan_models_model_id_llm_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_plan_models_plan_id_plans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("plan_id", "model_id", name=op.f("pk_plan_models")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("plan_name", sa.String(length=64), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("period_days", sa.Integer(), nullable=False),
        sa.Column("telegram_payment_charge_id", sa.String(length=255), nullable=False),
        sa.Column("provider_payment_charge_id", sa.String(length=255), nullable=True),
        sa.Column("invoice_payload", sa.String(length=128), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "paid",
                "refunded",
                name="payment_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", shared.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("refunded_at", shared.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("refunded_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_payments_plan_id_plans"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_payments_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "telegram_payment_charge_id", name=op.f("uq_payments_telegram_payment_charge_id")
        ),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_payments_user_id", ["user_id"], unique=False)

    op.create_table(
        "plan_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", shared.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "reason",
            sa.Enum(
                "admin",
                "purchase",
                "refund",
                "expiry",
                name="plan_change_reason",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("from_plan_id", sa.Integer(), nullable=True),
        sa.Column("from_plan_name", sa.String(length=64), nullable=True),
        sa.Column("from_expires_at", shared.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("to_plan_id", sa.Integer(), nullable=True),
        sa.Column("to_plan_name", sa.String(length=64), nullable=True),
        sa.Column("to_expires_at", shared.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_plan_id"],
            ["plans.id"],
            name=op.f("fk_plan_changes_from_plan_id_plans"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_plan_changes_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["to_plan_id"],
            ["plans.id"],
            name=op.f("fk_plan_changes_to_plan_id_plans"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_plan_changes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_changes")),
    )
    with op.batch_alter_table("plan_changes", schema=None) as batch_op:
        batch_op.create_index("ix_plan_changes_user_id_at", ["user_id", "at"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "plan_expires_at", shared.models.types.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "plan_reminded_at", shared.models.types.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index("ix_users_plan_expires_at", ["plan_expires_at"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_users_plan_id_plans"), "plans", ["plan_id"], ["id"], ondelete="SET NULL"
        )


def downgrade():
    """Drop what :func:`upgrade` created."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_users_plan_id_plans"), type_="foreignkey")
        batch_op.drop_index("ix_users_plan_expires_at")
        batch_op.drop_column("plan_reminded_at")
        batch_op.drop_column("plan_expires_at")
        batch_op.drop_column("plan_id")

    with op.batch_alter_table("plan_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_plan_changes_user_id_at")

    op.drop_table("plan_changes")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_user_id")
        batch_op.drop_index("ix_payments_created_at")

    op.drop_table("payments")
    op.drop_table("plan_models")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_plans_single_default",
            sqlite_where=sa.text("is_default"),
            postgresql_where=sa.text("is_default"),
        )

    op.drop_table("plans")
