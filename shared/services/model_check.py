"""The admin's «Test» of a model: one tiny request, with latency, answer and usage or the error.

The test asks the model even while it cools down (``shared.services.cooldowns``); an answer
ends the cooldown at once, a failure becomes the model's last error (not counted).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from flask import current_app

from shared.db import db
from shared.llm import LLMClients, LLMError, ModelSpec, chat
from shared.models import LLMModel
from shared.services import cooldowns
from shared.services.crypto import SecretUnreadable


@dataclass(frozen=True)
class CheckOutcome:
    """Result of a model test.

    Attributes:
        ok: Whether the model answered.
        message: One line for the admin.
    """

    ok: bool
    message: str


def check_model(model: LLMModel) -> CheckOutcome:
    """Ask the model to say "pong", once, without its fallback.

    Args:
        model: The model to test (its own configuration, enabled or not).

    Returns:
        The outcome; never raises for provider errors.
    """
    config = current_app.config["AI_ROUTER"]
    try:
        spec = replace(ModelSpec.from_model(model, with_fallback=False), max_tokens=16)
    except SecretUnreadable as exc:
        return CheckOutcome(False, f"{model.name}: {exc}")
    db.session.rollback()  # read-only so far: release the connection for the LLM call
    clients = LLMClients(config.llm_timeout)
    try:
        result = chat(
            replace(config, llm_max_attempts=1),
            clients,
            spec,
            [{"role": "user", "content": "Reply with the single word: pong"}],
        )
    except LLMError as exc:
        cooldowns.note_error(spec.id, f"Test: {exc}")
        return CheckOutcome(False, f"Test failed: {exc}")
    ended = cooldowns.end_cooldown(spec.id)
    return CheckOutcome(
        True,
        f"{spec.name} answered in {result.latency_ms} ms: {result.text[:200]!r} "
        f"(tokens {result.prompt_tokens} in / {result.completion_tokens} out)"
        + ("; its cooldown is over" if ended else ""),
    )
