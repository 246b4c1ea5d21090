"""Answering: a prompt from a unit of work → the LLM with no session → the outcome recorded.

No database connection, pool slot or transaction is held while the model answers. The prompt
(:class:`Prompt`) is built inside intake's unit of work on the fast path, or by :func:`prepare`
from the row when a queued row is settled later; the model, the mode and the key come from the
in-memory runtime snapshot. :func:`ask` calls the model — streamed: a private chat with the
``streaming`` setting on watches the answer grow (:class:`~.delivery.DraftPreview`), and /stop
ends the call from any process through the handle the caller registered
(``shared.services.generations``) — and :func:`record` writes the outcome in one UPDATE and
commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import db
from shared.extensions import llm, runtime, telegram
from shared.llm import Cancel, ChatResult, LLMError, ModelSpec, build_messages
from shared.models import ErrorKind, Request, RequestStatus, User
from shared.models.types import utcnow
from shared.runtime import Snapshot
from shared.services import quotas
from shared.services.conversation import attachments
from shared.services.conversation.delivery import DraftPreview
from shared.services.dialogs import (
    LoggedRequest,
    cost_usd,
    history,
    record_answer,
    record_failure,
)
from shared.services.plans import effective_plan, model_for
from shared.services.settings import ON
from shared.services.users import Sender
from shared.timers import later

logger = logging.getLogger(__name__)

#: Seconds an answer may take before the chat shows "typing…".
TYPING_AFTER = 1.5


@dataclass(frozen=True)
class Prompt:
    """What the LLM call needs, detached from the database.

    Attributes:
        request_id: The row being answered.
        chat_id: Where the answer goes.
        spec: The model to ask first.
        messages: The Chat Completions messages.
        drafts: Show the answer growing (a private chat, the ``streaming`` setting on).
        user_id: Who asked (whose quota the usage settles on).
        requested_at: When (the day and month the usage counts in).
        metered: The user's plan has limits: the usage settles their quota reservation.
        update_id: The Telegram update (names the reservation).
        question: The request's text (a caption; a transcript once made).
        attachment: What came with the message (``attachments.describe``), or None.
        attachment_text: A document's text once read.
        thread_id: The forum topic the answer goes to.
    """

    request_id: int
    chat_id: int
    spec: ModelSpec
    messages: list[dict[str, Any]]
    drafts: bool = False
    user_id: int = 0
    requested_at: datetime | None = None
    metered: bool = False
    update_id: int | None = None
    question: str = ""
    attachment: dict[str, Any] | None = None
    attachment_text: str | None = None
    thread_id: int | None = None


def build_prompt(
    row: Request | LoggedRequest, user: User | Sender, snapshot: Snapshot, *, metered: bool
) -> Prompt | tuple[ErrorKind, str]:
    """The prompt for a pending row, or why it cannot be answered at all.

    Runs inside the caller's unit of work (one query: the dialog's earlier turns). The model
    is the one intake chose for the row (the user's, within their plan, or the plan's
    fallback), else — disabled since — what the plan allows now.

    Args:
        row: The pending row (flushed).
        user: Its user (their chosen model and mode, their plan).
        snapshot: The runtime settings.
        metered: Whether the user's plan has limits (the usage settles a reservation).

    Returns:
        The prompt, or ``(kind, error)`` when no model is enabled or its key is unreadable.
    """
    spec = snapshot.models.get(row.model_id) if row.model_id is not None else None
    if spec is None:
        plan = effective_plan(snapshot, user.plan_id, user.plan_expires_at, utcnow())
        spec = model_for(snapshot, plan, user.model_id)
    mode = snapshot.mode(user.mode_id)
    if spec is None:
        return ErrorKind.NO_MODEL, "no enabled model is configured"
    if spec.key_error is not None:
        return ErrorKind.MODEL_KEY, spec.key_error
    turns = attachments.history_turns(history(row.dialog_id, row.number), vision=spec.vision)
    request = attachments.user_content(
        row.request_text, row.attachment, row.attachment_text, vision=spec.vision
    )
    messages = build_messages(mode.system_prompt if mode else None, turns, request, spec)
    drafts = row.chat_id > 0 and snapshot.setting("streaming", ON) == ON
    return Prompt(
        row.id,
        row.chat_id,
        spec,
        messages,
        drafts,
        user_id=row.user_id,
        requested_at=row.request_at,
        metered=metered,
        update_id=row.update_id,
        question=row.request_text,
        attachment=row.attachment,
        attachment_text=row.attachment_text,
        thread_id=row.thread_id,
    )


def prepare(request_id: int) -> Prompt | None:
    """Read a queued pending row and build its prompt; record a failure that needs no LLM.

    Args:
        request_id: A ``pending`` row.

    Returns:
        The prompt, or None when the row is not pending (any more) or failed right away.
    """
    try:
        row = db.session.get(Request, request_id)
        if row is None or row.status != RequestStatus.PENDING:
            return None
        # settle whatever intake reserved: the plan in force may have changed since (rare path)
        prompt = build_prompt(row, row.user, runtime.get(), metered=True)
        if isinstance(prompt, Prompt):
            return prompt
        kind, error = prompt
        record_failure(request_id, error, kind=kind)
        db.session.commit()
        if row.update_id is not None:  # settle whatever intake reserved (its plan may differ)
            quotas.settle(row.user_id, row.update_id, row.request_at, 0, None)
        return None
    finally:
        db.session.close()  # nothing stays checked out for the length of the LLM call


def ask(prompt: Prompt, cancel: Cancel) -> tuple[Prompt, ChatResult | LLMError]:
    """Fetch the prompt's files, then call the model (streamed, retries, fallback).

    No database session is held (the transcript or a document's text is recorded in its own
    short unit of work). A slow first token shows "typing…" after :data:`TYPING_AFTER`
    seconds; with drafts on, the growing answer replaces it. /stop ends the call: the answer
    is what was written (``finish_reason == "stopped"``).

    Args:
        prompt: The prompt.
        cancel: The generation's handle, registered for /stop by the caller.

    Returns:
        The prompt as asked (with its files read: a transcript as its ``question``), and the
        answer or the error (an :class:`~.attachments.AttachmentFailed` when a file could not
        be fetched, read or transcribed).
    """
    typing = later(
        TYPING_AFTER, telegram.send_chat_action, prompt.chat_id, "typing", prompt.thread_id
    )
    try:
        if prompt.attachment is not None or _has_images(prompt.messages):
            prompt = attachments.materialize(prompt, runtime.get())
        preview = DraftPreview(prompt.chat_id, prompt.request_id, typing) if prompt.drafts else None
        result = llm.chat(prompt.spec, prompt.messages, on_text=preview, cancel=cancel)
    except attachments.AttachmentFailed as exc:
        logger.error("attachment failed request_id=%s: %s", prompt.request_id, exc)
        return prompt, exc
    except LLMError as exc:
        logger.error("LLM gave up request_id=%s: %s", prompt.request_id, exc)
        return prompt, exc
    finally:
        typing.cancel()
    logger.info(
        "answered request_id=%s model=%s tokens=%s/%s finish=%s",
        prompt.request_id,
        result.model.name,
        result.prompt_tokens,
        result.completion_tokens,
        result.finish_reason,
    )
    return prompt, result


def _has_images(messages: list[dict[str, Any]]) -> bool:
    """Whether earlier turns hold images to fetch (a vision model's history)."""
    return any(isinstance(m["content"], list) for m in messages)


def error_kind_of(outcome: ChatResult | LLMError) -> ErrorKind:
    """The error kind a failed outcome records (``llm``, or the attachment's failure)."""
    return getattr(outcome, "kind", ErrorKind.LLM)


def record(prompt: Prompt, outcome: ChatResult | Exception) -> bool:
    """Write the outcome of the LLM call in one UPDATE and commit; settle the user's quota.

    The quota settles once, by whoever recorded the outcome (the UPDATE only matches a
    pending row): the reservation becomes the real usage, or nothing for a failed call.

    Args:
        prompt: The prompt that was asked (its row, user and time).
        outcome: The answer or the error.

    Returns:
        Whether the row was still pending (False: it was deleted, or recorded by someone else).
    """
    request_id = prompt.request_id
    try:
        if isinstance(outcome, LLMError | attachments.AttachmentFailed):
            done = record_failure(request_id, str(outcome), kind=error_kind_of(outcome))
        else:
            done = record_answer(request_id, outcome)
        db.session.commit()
    finally:
        db.session.close()
    if done and prompt.metered and prompt.requested_at and prompt.update_id is not None:
        tokens, cost = 0, None
        if isinstance(outcome, ChatResult):
            tokens = (outcome.prompt_tokens or 0) + (outcome.completion_tokens or 0)
            cost = cost_usd(outcome.model, outcome.prompt_tokens, outcome.completion_tokens)
        quotas.settle(prompt.user_id, prompt.update_id, prompt.requested_at, tokens, cost)
    return done
