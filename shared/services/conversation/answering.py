"""Answering: snapshot in a unit of work → the LLM with no session → record in a unit of work.

No database connection, pool slot or transaction is held while the model answers: the first
unit of work reads what the prompt needs and closes the session; the model, the mode and the key
come from the in-memory runtime snapshot; the second unit of work records the outcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.db import db
from shared.extensions import llm, runtime, telegram
from shared.llm import LLMError, ModelSpec, build_messages
from shared.models import ErrorKind, Request, RequestStatus
from shared.services.dialogs import complete_error, complete_ok, history

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    """What the LLM call needs, detached from the database.

    Attributes:
        request_id: The row being answered.
        chat_id: Where the answer goes.
        spec: The model to ask first.
        messages: The Chat Completions messages.
    """

    request_id: int
    chat_id: int
    spec: ModelSpec
    messages: list[dict[str, str]]


def prepare(request_id: int) -> Prompt | None:
    """Read the row and its dialog's history; record a failure that needs no LLM call.

    Args:
        request_id: A ``pending`` row.

    Returns:
        The prompt, or None when the row is not pending (any more) or failed right away
        (no model, unreadable key) — then the failure is recorded and committed.
    """
    try:
        row = db.session.get(Request, request_id)
        if row is None or row.status != RequestStatus.PENDING:
            return None
        snapshot = runtime.get()
        user = row.user
        spec, mode = snapshot.model(user.model_id), snapshot.mode(user.mode_id)
        if spec is None:
            complete_error(row, "no enabled model is configured", kind=ErrorKind.NO_MODEL)
        elif spec.key_error is not None:
            complete_error(row, spec.key_error, kind=ErrorKind.MODEL_KEY)
        else:
            prompt = mode.system_prompt if mode else None
            messages = build_messages(prompt, history(row), row.request_text, spec)
            return Prompt(request_id, row.chat_id, spec, messages)
        db.session.commit()
        return None
    finally:
        db.session.close()  # nothing stays checked out for the length of the LLM call


def answer(request_id: int) -> None:
    """Answer one pending row with the LLM and record the answer or the error.

    Args:
        request_id: The row.
    """
    prompt = prepare(request_id)
    if prompt is None:
        return
    try:
        telegram.call("send_chat_action", prompt.chat_id, "typing")
    except Exception:  # a typing indicator is cosmetic; never fail the answer for it
        logger.warning("sendChatAction failed chat_id=%s", prompt.chat_id)
    try:
        result = llm.chat(prompt.spec, prompt.messages)
    except LLMError as exc:
        logger.error("LLM gave up request_id=%s: %s", request_id, exc)
        _record(request_id, error=str(exc))
        return
    _record(request_id, result=result)
    logger.info(
        "answered request_id=%s model=%s tokens=%s/%s",
        request_id,
        result.model.name,
        result.prompt_tokens,
        result.completion_tokens,
    )


def _record(request_id: int, *, result: object = None, error: str | None = None) -> None:
    """Write the outcome of the LLM call in one unit of work (a row deleted meanwhile is left)."""
    try:
        row = db.session.get(Request, request_id)
        if row is None or row.status != RequestStatus.PENDING:
            return
        if error is not None:
            complete_error(row, error, kind=ErrorKind.LLM)
        else:
            complete_ok(row, result)
        db.session.commit()
    finally:
        db.session.close()
