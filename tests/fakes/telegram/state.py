"""The fake's bookkeeping: calls, chats and messages, users, groups, files, updates, the webhook.

:class:`_FakeState` is the base of every part of :class:`~tests.fakes.telegram.FakeTelegram`: it
declares the state, (re)creates it (:meth:`_FakeState._clear_state`) and holds the helpers that
read and change it. Every helper runs with ``self._cond`` held (or before the server starts).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.fakes.telegram.flood import FloodLimits, FloodState
from tests.fakes.telegram.records import Call, Delivery

if TYPE_CHECKING:
    from tests.fakes.telegram.files import _StoredFile

logger = logging.getLogger(__name__)

# Update types delivered when allowed_updates is unset or empty.
_NOT_DELIVERED_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


@dataclass
class _Failure:
    error_code: int
    description: str
    parameters: dict[str, Any] | None
    remaining: int


class _FakeState:
    """The state shared by the parts of the fake, and the helpers over it.

    The attributes declared here without a value are set by ``FakeTelegram.__init__``; the rest
    are (re)created by :meth:`_clear_state`. The mutable ones are guarded by ``_cond``.
    """

    token: str
    bot_user: dict[str, Any]
    _webhook_retry_delay: float
    _webhook_timeout: float
    _strict_html_entities: bool
    _cond: threading.Condition
    _stopping: bool
    _next_update_id: int
    _poll_generation: int
    _waiting_polls: int
    _methods: dict[str, Callable[[dict[str, Any]], Any]]
    _canonical: dict[str, str]
    _flood_limits: FloodLimits | None
    _pre_checkout_timeout: float
    _file_numbers: Iterator[int]

    def _clear_state(self) -> None:
        """Forget everything except the update_id counter (callers hold the lock or own self)."""
        self._calls: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._chats: dict[int, dict[int, dict[str, Any]]] = {}
        self._next_message_id: dict[int, int] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._failures: dict[str, _Failure] = {}
        self._drafts: list[dict[str, Any]] = []
        self._callback_queries: dict[str, dict[str, Any]] = {}
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._allowed_updates: list[str] | None = None
        self._webhook: dict[str, Any] | None = None
        self._last_error: tuple[int, str] | None = None
        self._next_delivery_at = 0.0
        self._deliveries: list[Delivery] = []
        self._flood = FloodState(self._flood_limits) if self._flood_limits else None
        # Telegram Stars payments (see payments.py).
        self._invoices: list[dict[str, Any]] = []
        self._pre_checkout_queries: dict[str, dict[str, Any]] = {}
        self._pre_checkout_answers: list[dict[str, Any]] = []
        self._payments: dict[str, dict[str, Any]] = {}
        self._refunds: list[dict[str, Any]] = []
        self._star_transactions: list[dict[str, Any]] = []
        # Groups registered by add_group (chat id -> Chat object).
        self._groups: dict[int, dict[str, Any]] = {}
        # The file store (see files.py): files by file_id, the file_paths getFile handed out
        # (file_path -> file_id) and the downloads served.
        self._files: dict[str, _StoredFile] = {}
        self._file_paths: dict[str, str] = {}
        self._downloads: list[dict[str, Any]] = []
        self._download_failures: list[int] = []  # statuses the next downloads answer

    # ---------------------------------------------------------------- internals: state helpers

    def _enqueue(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, **copy.deepcopy(update)}
        self._next_update_id += 1
        self._updates.append(update)
        self._cond.notify_all()
        logger.debug("FakeTelegram: queued update %s", update["update_id"])
        return copy.deepcopy(update)

    def _remember_user(
        self, user_id: int, first_name: str, username: str | None, language_code: str | None
    ) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        return copy.deepcopy(user)

    def _chat_object(self, chat_id: int) -> dict[str, Any]:
        group = self._groups.get(chat_id)
        if group is not None:
            return copy.deepcopy(group)
        if chat_id < 0:
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            return {"id": chat_id, "title": "Test group", "type": kind}
        chat: dict[str, Any] = {"id": chat_id}
        user = self._users.get(chat_id)
        chat["first_name"] = user["first_name"] if user else "Test"
        if user and user.get("username"):
            chat["username"] = user["username"]
        chat["type"] = "private"
        return chat

    def _allocate_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _is_bot_message(self, message: dict[str, Any]) -> bool:
        return message.get("from", {}).get("id") == self.bot_user["id"]

    def _bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return [m for m in self._chats.get(chat_id, {}).values() if self._is_bot_message(m)]

    def _is_allowed(self, update: dict[str, Any]) -> bool:
        kind = _update_type(update)
        if not self._allowed_updates:
            return kind not in _NOT_DELIVERED_BY_DEFAULT
        return kind in self._allowed_updates

    def _deliverable_updates(self) -> list[dict[str, Any]]:
        """The pending updates, after dropping those ``allowed_updates`` excludes."""
        kept = []
        for update in self._updates:
            if self._is_allowed(update):
                kept.append(update)
            else:
                logger.info(
                    "FakeTelegram: dropping update %s (%s): not in allowed_updates %s",
                    update["update_id"],
                    _update_type(update),
                    self._allowed_updates,
                )
        self._updates = kept
        return kept

    def _matching_calls(
        self, method: str | None, predicate: Callable[[Call], bool] | None
    ) -> list[Call]:
        wanted = method.lower() if method is not None else None
        return [
            call
            for call in self._calls
            if (wanted is None or call.method.lower() == wanted) and _matches(predicate, call)
        ]

    def _describe_wait_failure(
        self, method: str, count: int, found: list[Call], timeout: float
    ) -> str:
        summary = Counter(
            f"{call.method}" + ("" if call.ok else f" ({call.status})") for call in self._calls
        )
        recorded = ", ".join(f"{name} x{n}" for name, n in summary.items()) or "none"
        same = [c for c in self._calls if c.method.lower() == method.lower()][-5:]
        details = "".join(
            f"\n  {c.method} {c.params!r} -> {json.dumps(c.response, ensure_ascii=False)[:300]}"
            for c in same
        )
        return (
            f"timed out after {timeout} s waiting for {count} matching {method} call(s); "
            f"{len(found)} matched. Recorded calls: {recorded}."
            + (f" Last {method} calls:{details}" if details else "")
        )

    def _webhook_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": sum(1 for u in self._updates if self._is_allowed(u)),
        }
        if self._last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._last_error
        if self._webhook:
            info["max_connections"] = self._webhook["max_connections"]
            if self._webhook.get("ip_address"):
                info["ip_address"] = self._webhook["ip_address"]
        if self._allowed_updates:
            info["allowed_updates"] = list(self._allowed_updates)
        return info


def _matches(predicate: Callable[[Any], bool] | None, item: Any) -> bool:
    """Apply a test's predicate; one that trips over a record's shape does not match it."""
    if predicate is None:
        return True
    try:
        return bool(predicate(item))
    except (KeyError, IndexError, TypeError, AttributeError):
        return False


def _update_type(update: dict[str, Any]) -> str:
    return next((key for key in update if key != "update_id"), "")


def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
    scope = scope or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(language_code or "")
