"""SQLAlchemy models, one module per aggregate. Importing this package registers them all.

Every schema change goes through an Alembic migration (``flask db migrate``), never
``create_all``.
"""

from shared.models.admin import AdminUser, ApiToken
from shared.models.audit import AuditAction, AuditEntry
from shared.models.dialog import Dialog, ErrorKind, Request, RequestStatus
from shared.models.group import Group, GroupStatus
from shared.models.llm_model import LLMModel
from shared.models.mode import Mode
from shared.models.payment import Payment, PaymentStatus
from shared.models.plan import Plan, PlanChange, PlanChangeReason, plan_models
from shared.models.setting import Setting
from shared.models.user import User, UserStatus

__all__ = [
    "AdminUser",
    "ApiToken",
    "AuditAction",
    "AuditEntry",
    "Dialog",
    "ErrorKind",
    "Group",
    "GroupStatus",
    "LLMModel",
    "Request",
    "RequestStatus",
    "Mode",
    "Payment",
    "PaymentStatus",
    "Plan",
    "PlanChange",
    "PlanChangeReason",
    "Setting",
    "User",
    "UserStatus",
    "plan_models",
]
