"""The «Groups» page: the group chats the bot was asked in, their activity, Block / Unblock.

Groups are registered by the bot (``shared.services.groups.register_group``), never created
here. Every rule lives in ``shared.services.groups``: a status changes only through
``groups.set_status`` (row buttons and bulk actions alike), a group is deleted only through
``groups.delete_group`` (which refuses a blocked one), and the activity columns come from
``groups.activity_of`` (one query per listed page).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import flash, g, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.contrib.sqla.filters import FilterEqual, IntEqualFilter
from flask_admin.helpers import get_redirect_target
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.wrappers import Response

from shared.db import db
from shared.models import Group, GroupStatus
from shared.models.types import row_id
from shared.services import groups
from shared.services.groups import GroupActivity
from web.admin.security import SecureModelView

logger = logging.getLogger(__name__)

#: The row button of each status: the status it sets, its label, its style, its question.
_BUTTONS = {
    GroupStatus.ACTIVE: (
        GroupStatus.BLOCKED,
        "Block",
        "danger",
        "Block {title}? The bot will refuse everyone in it.",
    ),
    GroupStatus.BLOCKED: (
        GroupStatus.ACTIVE,
        "Unblock",
        "primary",
        "Unblock {title}? The bot will answer there again.",
    ),
}


def _activity(group: Group) -> GroupActivity:
    """A listed group's activity, from the batch its page loaded (read alone otherwise)."""
    loaded = g.get("group_activity")
    if loaded is None or group.chat_id not in loaded:
        loaded = {**(loaded or {}), **groups.activity_of([group.chat_id])}
        g.group_activity = loaded
    return loaded[group.chat_id]


def _name(group: Group) -> str:
    return group.title or str(group.chat_id)


def status_badge(group: Group) -> Markup:
    """The group's status as a badge (``blocked`` stands out).

    Args:
        group: The group.

    Returns:
        Safe HTML.
    """
    style = "danger" if group.status == GroupStatus.BLOCKED else "success"
    return Markup('<span class="badge badge-{}">{}</span>').format(style, str(group.status))


def status_button(group: Group) -> Markup:
    """«Block» or «Unblock»: a CSRF-protected POST that returns to the same list page.

    Args:
        group: The listed group.

    Returns:
        Safe HTML (a small form).
    """
    status, label, style, question = _BUTTONS[GroupStatus(group.status)]
    return Markup(
        '<form method="post" action="{action}" class="d-inline" data-question="{question}" '
        'onsubmit="return confirm(this.dataset.question)">'
        '<input type="hidden" name="csrf_token" value="{token}">'
        '<input type="hidden" name="status" value="{status}">'
        '<input type="hidden" name="url" value="{back}">'
        '<button class="btn btn-sm btn-outline-{style}" type="submit">{label}</button>'
        "</form>"
    ).format(
        action=url_for(".status_view", group_id=group.id),
        question=question.format(title=_name(group)),
        token=generate_csrf(),
        status=status.value,
        back=request.full_path.rstrip("?"),
        style=style,
        label=label,
    )


class GroupView(SecureModelView):
    """Groups and supergroups, most recently seen first: activity, status, Block / Unblock.

    No create or edit form: groups come from Telegram and only their status is the admin's,
    changed with the row buttons or the bulk actions. Deleting an active group is allowed (its
    next request registers it again); a blocked one is refused.
    """

    can_create = can_edit = False
    can_delete = True
    named_filter_urls = True  # ?flt0_status_equals=blocked
    column_list = (
        "title", "chat_id", "kind", "is_forum", "status", "members", "requests",
        "last_seen_at", "buttons",
    )  # fmt: skip
    column_details_list = (
        "title", "chat_id", "kind", "is_forum", "status", "members", "requests",
        "last_request_at", "first_seen_at", "last_seen_at",
    )  # fmt: skip
    column_labels = {
        "chat_id": "Chat id",
        "is_forum": "Forum",
        "members": "Members seen",
        "requests": "Requests",
        "last_request_at": "Last request",
        "first_seen_at": "First seen",
        "last_seen_at": "Last seen",
        "buttons": "",
    }
    column_sortable_list = ("title", "chat_id", "kind", "status", "first_seen_at", "last_seen_at")
    column_default_sort = [("last_seen_at", True), ("id", True)]
    column_searchable_list = ("title",)
    column_filters = (
        FilterEqual(Group.status, "Status", options=[(s.value, s.value) for s in GroupStatus]),
        IntEqualFilter(Group.chat_id, "Chat id"),
    )
    column_formatters = {
        "status": lambda v, c, m, n: status_badge(m),
        "members": lambda v, c, m, n: _activity(m).members,
        "requests": lambda v, c, m, n: _activity(m).requests,
        "buttons": lambda v, c, m, n: status_button(m),
    }
    column_formatters_detail = {
        **column_formatters,
        "last_request_at": lambda v, c, m, n: (
            "—"
            if _activity(m).last_request_at is None
            else _activity(m).last_request_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        ),
    }

    def load_page(self, rows: list[Group]) -> None:
        """The page's groups' activity, read in one query."""
        g.group_activity = groups.activity_of([group.chat_id for group in rows])

    def delete_model(self, model: Group) -> bool:
        """Delete an active group through ``groups.delete_group``; a blocked one is refused.

        Args:
            model: The group.

        Returns:
            Whether it was deleted (a refusal is flashed).
        """
        name = _name(model)
        try:
            groups.delete_group(model)
            db.session.commit()
        except groups.GroupBlocked as exc:
            db.session.rollback()
            flash(f"Group «{name}» not deleted: {exc}.", "error")
            return False
        return True

    def _set(self, found: list[Group], status: GroupStatus) -> int:
        """Give groups a status through ``groups.set_status`` and commit; how many changed."""
        changed = 0
        for group in found:
            changed += group.status != status
            groups.set_status(group, status)
        db.session.commit()
        return changed

    @expose("/status/<int:group_id>", methods=("POST",))
    def status_view(self, group_id: int) -> Response:
        """Block or unblock one group (the row's button), then go back to the list page."""
        back = get_redirect_target() or url_for(".index_view")
        found = row_id(group_id)
        group = db.session.get(Group, found) if found is not None else None
        try:
            status = GroupStatus(request.form.get("status", ""))
        except ValueError:
            status = None
        if group is None or status is None:
            flash("No such group or status.", "error")
            return redirect(back)
        self._set([group], status)
        verb = "blocked" if status == GroupStatus.BLOCKED else "unblocked"
        flash(f"Group «{_name(group)}» {verb}.", "success")
        return redirect(back)

    def _bulk(self, ids: list[str], status: GroupStatus, verb: str) -> None:
        wanted = [found for found in map(row_id, ids) if found is not None]
        chosen = db.session.scalars(select(Group).where(Group.id.in_(wanted))).all()
        changed = self._set(list(chosen), status)
        flash(f"{verb} {changed} group(s).", "success")

    @action("block", "Block", "Block the selected groups? The bot will refuse everyone in them.")
    def action_block(self, ids: list[str]) -> None:
        """Block the selected groups."""
        self._bulk(ids, GroupStatus.BLOCKED, "Blocked")

    @action("unblock", "Unblock", "Unblock the selected groups?")
    def action_unblock(self, ids: list[str]) -> None:
        """Let the selected groups be answered again."""
        self._bulk(ids, GroupStatus.ACTIVE, "Unblocked")


def register_groups(admin: Any) -> None:
    """Add the «Groups» page to the admin.

    Args:
        admin: The ``flask_admin.Admin`` of the app.
    """
    admin.add_view(GroupView(Group, db, name="Groups", endpoint="group"))


__all__ = ["GroupView", "register_groups", "status_badge", "status_button"]
