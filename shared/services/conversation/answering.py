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

from shared.db import db
from shared.extensions import llm, runtime, telegram
from shared.llm import Cancel, ChatResult, LLMError, ModelSpec, build_messages
from shared.models import ErrorKind, Request, RequestStatus, User
from shared.runtime import Snapshot
from shared.services.conversation.delivery import DraftPreview
from shared.services.dialogs import LoggedRequest, history, record_answer, record_failure
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
    """

    request_id: int
    chat_id: int
    spec: ModelSpec
    messages: list[dict[str, str]]
    drafts: bool = False


def build_prompt(
    row: Request | LoggedRequest, user: User | Sender, snapshot: Snapshot
) -> Prompt | tuple[ErrorKind, str]:
    """The prompt for a pending row, or why it cannot be answered at all.

    Runs inside the caller's unit of work (one query: the dialog's earlier turns).

    Args:
        row: The pending row (flushed).
        user: Its user (their chosen model and mode).
        snapshot: The runtime settings.

    Returns:
        The prompt, or ``(kind, error)`` when no model is enabled or its key is unreadable.
    """
    spec, mode = snapshot.model(user.model_id), snapshot.mode(user.mode_id)
    if spec is None:
        return ErrorKind.NO_MODEL, "no enabled model is configured"
    if spec.key_error is not None:
        return ErrorKind.MODEL_KEY, spec.key_error
    turns = history(row.dialog_id, row.number)
    messages = build_messages(mode.system_prompt if mode else None, turns, row.request_text, spec)
    drafts = row.chat_id > 0 and snapshot.setting("streaming", ON) == ON
    return Prompt(row.id, row.chat_id, spec, messages, drafts)


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
        prompt = build_prompt(row, row.user, runtime.get())
        if isinstance(prompt, Prompt):
            return prompt
        kind, error = prompt
        record_failure(request_id, error, kind=kind)
        db.session.commit()
        return None
    finally:
        db.session.close()  # nothing stays checked out for the length of the LLM call


def ask(prompt: Prompt, cancel: Cancel) -> ChatResult | LLMError:
    """Call the model (streamed, retries, fallback) with no database session held.

    A slow first token shows "typing…" after :data:`TYPING_AFTER` seconds; with drafts on,
    the growing answer replaces it. /stop ends the call: the answer is what was written
    (``finish_reason == "stopped"``).

    Args:
        prompt: The prompt.
        cancel: The generation's handle, registered for /stop by the caller.

    Returns:
        The answer, or the error when every model gave up.
    """
    typing = later(TYPING_AFTER, telegram.send_chat_action, prompt.chat_id, "typing")
    preview = DraftPreview(prompt.chat_id, prompt.request_id, typing) if prompt.drafts else None
    try:
        result = llm.chat(prompt.spec, prompt.messages, on_text=preview, cancel=cancel)
    except LLMError as exc:
        logger.error("LLM gave up request_id=%s: %s", prompt.request_id, exc)
        return exc
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
    return result


def record(request_id: int, outcome: ChatResult | LLMError) -> bool:
    """Write the outcome of the LLM call in one UPDATE and commit.

    Args:
        request_id: The row.
        outcome: The answer or the error.

    Returns:
        Whether the row was still pending (False: it was deleted, or recorded by someone else).
    """
    try:
        if isinstance(outcome, LLMError):
            done = record_failure(request_id, str(outcome), kind=ErrorKind.LLM)
        else:
            done = record_answer(request_id, outcome)
        db.session.commit()
        return done
    finally:
        db.session.close()
