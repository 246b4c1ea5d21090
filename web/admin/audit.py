"""The «Audit log» page: who changed which setting, model, mode, user or account, and when.

Read-only: entries are written by ``shared.services.audit`` in the transaction of each change;
nobody edits or deletes them here.
"""

from __future__ import annotations

import json
from typing import Any

from flask_admin.contrib.sqla.filters import FilterEqual
from markupsafe import Markup, escape

from shared.db import db
from shared.models import AuditAction, AuditEntry
from shared.services.audit import KINDS
from web.admin.security import SecureModelView

#: Longest value shown in a list row (the details page shows it whole).
LIST_VALUE_LIMIT = 80


def _value(value: Any, limit: int | None) -> str:
    """One old or new value as text: JSON (so ``"5"`` and ``5`` differ), ``—`` for none."""
    if value is None:
        return "—"
    text = json.dumps(value, ensure_ascii=False)
    return text if limit is None or len(text) <= limit else text[:limit] + "…"


def describe_changes(changes: dict[str, Any], limit: int | None = LIST_VALUE_LIMIT) -> Markup:
    """An entry's changes as a list: ``field: old → new``, or ``field: set`` for a secret.

    Args:
        changes: The entry's ``changes``.
        limit: Longest value shown (None: whole values).

    Returns:
        Safe HTML.
    """
    items = []
    for name, change in (changes or {}).items():
        if isinstance(change, list) and len(change) == 2:
            text = f"{_value(change[0], limit)} → {_value(change[1], limit)}"
        else:
            text = str(change)
        items.append(Markup("<li><code>{}</code>: {}</li>").format(name, text))
    if not items:
        return Markup("—")
    return Markup('<ul class="list-unstyled mb-0">') + Markup("").join(items) + Markup("</ul>")


class AuditView(SecureModelView):
    """The audit log, newest first; filters by kind, object, actor, action and time."""

    can_create = can_edit = can_delete = False
    named_filter_urls = True  # ?flt0_kind_equals=user, readable and bookmarkable
    column_list = ("at", "actor", "action", "kind", "object_id", "label", "changes")
    column_details_list = column_list
    column_labels = {"at": "When", "object_id": "Id", "label": "Object"}
    column_filters = (
        FilterEqual(AuditEntry.kind, "Kind", options=[(kind, kind) for kind in KINDS]),
        FilterEqual(AuditEntry.action, "Action", options=[(a.value, a.value) for a in AuditAction]),
        "actor",
        "object_id",
        "at",
    )
    column_searchable_list = ("label",)
    column_default_sort = [("at", True), ("id", True)]
    column_formatters = {
        "action": lambda v, c, m, n: str(m.action),
        "changes": lambda v, c, m, n: describe_changes(m.changes),
        "label": lambda v, c, m, n: escape(m.label),
    }
    column_formatters_detail = {
        **column_formatters,
        "changes": lambda v, c, m, n: describe_changes(m.changes, limit=None),
    }


def register_audit(admin: Any) -> None:
    """Add the «Audit log» page to the admin.

    Args:
        admin: The ``flask_admin.Admin`` of the app.
    """
    admin.add_view(AuditView(AuditEntry, db, name="Audit log", endpoint="audit"))
