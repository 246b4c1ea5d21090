"""The answering pipeline of a text message: intake → answering → delivery, in chat order.

One task per text message (``tasks.replies.answer_text``) calls :func:`handle_text`:

1. :func:`~shared.services.conversation.intake.intake` logs the request, decides (answer,
   refuse, ignore) and prepares the work in memory, in one unit of work;
2. :func:`work_chat` takes the chat's lock (:class:`ChatLock`) without waiting. The holder
   settles its own row from memory (the fast path: nothing is read back) and then any row that
   queued behind it, oldest first, from the database — so the answers of one chat never
   overtake each other while different chats run fully in parallel. A task that finds the lock
   taken marks the chat *dirty* in the same atomic step and returns: its row is committed, and
   the holder can only release the lock when the chat is clean, so nothing is left behind and
   nothing bounces (no busy retries);
3. before a row's LLM call the holder *claims* the row in Redis, so a row is sent to the model
   once even when a ticket in memory and a queue scan race for it.

A failure while settling a row raises :class:`RowFailed` naming the row; the task retries, and
after its last attempt :func:`give_up` settles that row with an apology. A reply held back by
Telegram's flood limits raises :class:`ReplyDeferred` (not a failure): the chat is released and
a task settles it again when the pacer has room.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import select

from shared.db import db
from shared.extensions import cpu_slots, generations, leases, redis_store, telegram
from shared.llm import Cancel
from shared.logging import log_context, redact
from shared.models import ErrorKind, Request, RequestStatus
from shared.models.types import utcnow
from shared.redis import KEY_PREFIX
from shared.services import groups, inbox
from shared.services.conversation import attachments
from shared.services.conversation.answering import Prompt, ask, error_kind_of, prepare, record
from shared.services.conversation.delivery import (
    Outbox,
    ReplyView,
    deliver,
    reply_parts,
    send,
)
from shared.services.conversation.intake import (
    QUEUE_WINDOW,
    Decision,
    Incoming,
    Intake,
    Ticket,
    intake,
)
from shared.services.generations import stop_key
from shared.services.leases import lease_seconds
from shared.telegram.client import SendDeferred

logger = logging.getLogger(__name__)

__all__ = [
    "ChatLock",
    "Decision",
    "Incoming",
    "Intake",
    "ReplyDeferred",
    "RowFailed",
    "Ticket",
    "deliver",
    "give_up",
    "handle_text",
    "intake",
    "stop_chat",
    "work_chat",
]

# KEYS[1] lock, KEYS[2] dirty flag; ARGV[1] token, ARGV[2] ttl ms.
#: Milliseconds a dirty flag lives. It has no owner to renew it, and it must outlive any
#: holder's work (an LLM call may take minutes); a stale one costs a holder one extra scan.
DIRTY_TTL_MS = 24 * 3600 * 1000

# KEYS[1] lock, KEYS[2] dirty flag, KEYS[3] the chat's inbox; ARGV[1] token, ARGV[2] lease ms,
# ARGV[3] dirty flag ttl ms, ARGV[4] the update leaving the inbox (its row is logged) or ''.
_ACQUIRE = """
if ARGV[4] ~= '' then redis.call('ZREM', KEYS[3], ARGV[4]) end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
return 0
"""
# Release only a clean chat: 1 released, 0 kept (dirty flag cleared, ttl renewed), -1 not ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('DEL', KEYS[1])
return 1
"""
_FORCE_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""
# The fast path's one round trip: the chat's lock (or the dirty flag), then the row's claim.
# KEYS[1] lock, KEYS[2] dirty flag, KEYS[3] the row's claim, KEYS[4] its stop mark, KEYS[5]
# the chat's inbox; ARGV[1] token, ARGV[2] lease ms, ARGV[3] dirty flag ttl ms, ARGV[4] claim
# lease s, ARGV[5] the update leaving the inbox or ''.
# -1: the chat is held (marked dirty); else 0/1/2 as _CLAIM below.
_ACQUIRE_AND_CLAIM = """
if ARGV[5] ~= '' then redis.call('ZREM', KEYS[5], ARGV[5]) end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return -1
end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'EX', ARGV[4]) then
  return 1 + redis.call('EXISTS', KEYS[4])
end
return 0
"""


class RowFailed(RuntimeError):
    """Settling a row failed (Telegram or the database); the task retries.

    Args:
        request_id: The row that failed.
        cause: What failed.
    """

    def __init__(self, request_id: int, cause: BaseException) -> None:
        super().__init__(f"request {request_id}: {type(cause).__name__}: {cause}")
        self.request_id = request_id
        self.cause = cause


class ReplyDeferred(RuntimeError):
    """A row's reply waits for the flood limits: settle its chat again after ``wait`` seconds.

    Args:
        request_id: The row whose reply is (partly) unsent; its answer is recorded.
        wait: Seconds until the pacer expects room.
    """

    def __init__(self, request_id: int, wait: float) -> None:
        super().__init__(f"request {request_id}: reply deferred by {wait:.1f} s")
        self.request_id = request_id
        self.wait = wait


class ClaimHeld(RuntimeError):
    """A pending row's LLM call was claimed by a settler that did not finish (it crashed)."""


class ChatLock:
    """One settler per chat: a Redis lock with a *dirty* flag set by those who found it taken.

    The lock is a lease (``shared.services.leases``): renewed while this process lives, it
    lapses within ``LEASE_SECONDS`` of a crash. Uses the current app's Redis (scripts run with
    EVALSHA). Taking it also takes ``update_id`` out of the chat's inbox
    (``shared.services.inbox``): its row is logged, later questions need not wait for it.

    Args:
        chat_id: The chat.
        update_id: The update whose row was just logged, if any.
    """

    def __init__(self, chat_id: int, update_id: int | None = None) -> None:
        self._keys = [f"{KEY_PREFIX}chat:{chat_id}:lock", f"{KEY_PREFIX}chat:{chat_id}:dirty"]
        self._inbox = inbox.inbox_key(chat_id)
        self._leaving = "" if update_id is None else str(update_id)
        self.token = secrets.token_hex(8)
        self._ttl = str(lease_seconds() * 1000)

    def acquire(self) -> bool:
        """Take the lock, or mark the chat dirty for its holder (atomically)."""
        acquired = bool(
            redis_store.script(_ACQUIRE)(
                keys=[*self._keys, self._inbox],
                args=[self.token, self._ttl, DIRTY_TTL_MS, self._leaving],
            )
        )
        if acquired:
            leases.hold(self._keys[0], self.token)
        return acquired

    def acquire_and_claim(self, request_id: int) -> int:
        """Take the lock (or mark the chat dirty) and, if taken, claim a row: one round trip.

        The claim holds this lock's token; :func:`claimed` keeps it alive.

        Args:
            request_id: The row whose LLM call the holder is about to make.

        Returns:
            -1 when the chat is held by another settler (now marked dirty); else the claim's
            outcome as in :func:`claimed`: 0 claimed elsewhere, 1 claimed, 2 claimed with a
            /stop that came first.
        """
        result = int(
            redis_store.script(_ACQUIRE_AND_CLAIM)(
                keys=[*self._keys, _claim_key(request_id), stop_key(request_id), self._inbox],
                args=[self.token, self._ttl, DIRTY_TTL_MS, lease_seconds(), self._leaving],
            )
        )
        if result >= 0:
            leases.hold(self._keys[0], self.token)
        return result

    def release_if_clean(self) -> bool:
        """Release unless someone queued meanwhile; then keep it (and clear the flag).

        Returns:
            True when released (or lost); False when the holder must look for work again.
        """
        result = int(self._call(_RELEASE))
        if result == -1:
            logger.warning("chat lock expired before release key=%s", self._keys[0])
        if result != 0:
            leases.drop(self._keys[0])
        return result != 0

    def release(self) -> None:
        """Release the lock whatever the dirty flag says (after a failure)."""
        leases.drop(self._keys[0])
        self._call(_FORCE_RELEASE)

    def _call(self, script: str) -> Any:
        return redis_store.script(script)(keys=self._keys, args=[self.token, self._ttl])


# KEYS[1] the row's claim, KEYS[2] its stop mark; ARGV[1] ttl s, ARGV[2] the claimer's token.
# 0: claimed elsewhere; 1: claimed; 2: claimed, and /stop came first.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[1]) then
  return 1 + redis.call('EXISTS', KEYS[2])
end
return 0
"""


def _claim_key(request_id: int) -> str:
    return f"{KEY_PREFIX}answering:{request_id}"


@contextmanager
def claimed(request_id: int, lock: ChatLock | None = None) -> Iterator[Cancel | None | bool]:
    """Register a row's generation for /stop, then claim its LLM call, in one round trip.

    The claim succeeds once (a second claim fails while it is held; it is a lease, renewed
    for the length of the block and lapsing after it); the same script
    reads the row's stop mark, so a /stop that came before the call is honoured (the handle is
    registered first: a stop published after the check reaches it through the channel).

    Args:
        request_id: The row.
        lock: A chat lock to take in the same round trip (the fast path of a new row).

    Yields:
        The generation's cancel handle; None when another settler holds the claim; False
        when ``lock`` was given and the chat is held by another settler (nothing claimed).
    """
    key = _claim_key(request_id)
    with generations.running(request_id, check_mark=False) as cancel:
        if lock is not None:
            token = lock.token
            result = lock.acquire_and_claim(request_id)
        else:
            token = secrets.token_hex(8)
            result = int(
                redis_store.script(_CLAIM)(
                    keys=[key, stop_key(request_id)], args=[lease_seconds(), token]
                )
            )
        if result < 0:
            yield False
            return
        if not result:
            yield None
            return
        if result == 2:
            cancel.cancel()
        leases.hold(key, token)  # kept alive for the call; it lapses after it, unrenewed
        try:
            yield cancel
        finally:
            leases.drop(key)


def handle_text(update: dict[str, Any], after_earlier: bool = False) -> Intake | None:
    """Answer a question (text, photo, voice, audio, document): log it, then settle its chat.

    The chat is settled unless another task does.

    Args:
        update: The raw update.
        after_earlier: The door saw another question of the chat in flight: wait until the
            earlier ones are logged first (``shared.services.inbox``), so the chat's rows are
            logged, and answered, in Telegram's order.

    Returns:
        The intake outcome, or None for an update without a text message.

    Raises:
        RowFailed: When a row of the chat could not be settled (retry later).
        ReplyDeferred: When a reply waits for the flood limits (settle the chat later).
    """
    chat = (update.get("message") or {}).get("chat")
    bot = groups.BotIdentity.of(telegram.me()) if groups.is_group(chat) else None
    incoming = Incoming.from_update(update, bot)
    chat_id, update_id = _inbox_entry(update)
    if incoming is None:
        if chat_id is not None:
            inbox.leave(chat_id, update_id)
        return None
    if after_earlier and incoming.update_id is not None:
        inbox.wait_for_turn(incoming.chat_id, incoming.update_id)
    with cpu_slots.held():  # a burst is taken in arrival order (shared.green.CpuSlots)
        outcome = intake(incoming)
    if outcome.decision == Decision.IGNORE:
        if incoming.update_id is not None:
            inbox.leave(incoming.chat_id, incoming.update_id)
    else:
        with log_context(request_id=outcome.request_id):
            work_chat(outcome.chat_id, outcome, incoming.update_id)
    return outcome


def _inbox_entry(update: dict[str, Any]) -> tuple[int | None, int]:
    """The chat and update the door put in an inbox for this update (chat None: none)."""
    chat = (update.get("message") or {}).get("chat") or {}
    return chat.get("id"), update.get("update_id", 0)


def next_open(chat_id: int) -> int | None:
    """The chat's oldest row whose reply is not settled yet (within the queue window)."""
    try:
        return db.session.scalar(
            select(Request.id)
            .where(
                Request.chat_id == chat_id,
                Request.delivered_at.is_(None),
                Request.request_at >= utcnow() - QUEUE_WINDOW,
            )
            .order_by(Request.id)
            .limit(1)
        )
    finally:
        db.session.close()


def _answer_and_send(prompt: Prompt, view: ReplyView, cancel: Cancel) -> None:
    """The LLM call, then (in a CPU slot) the record and the reply built in memory."""
    prompt, outcome = ask(prompt, cancel)
    with cpu_slots.held():
        _record_and_send(prompt, outcome, view)


def _record_and_send(prompt: Prompt, outcome: Any, view: ReplyView) -> None:
    """Record the outcome of the LLM call and send the reply built in memory."""
    if not record(prompt, outcome):
        return  # no longer pending: deleted, or recorded by another settler
    preface = attachments.preface(prompt.attachment, view.lang)
    transcript = attachments.transcript_of(prompt.attachment, prompt.question)
    if isinstance(outcome, Exception):
        answered = dataclasses.replace(
            view,
            status=RequestStatus.ERROR,
            response_text=None,
            error_kind=error_kind_of(outcome),
        )
    else:
        status = RequestStatus.STOPPED if outcome.finish_reason == "stopped" else RequestStatus.OK
        answered = dataclasses.replace(
            view,
            status=status,
            response_text=outcome.text,
            error_kind=None,
            preface=preface,
            transcript=transcript,
        )
    send(
        Outbox(
            prompt.request_id,
            prompt.chat_id,
            reply_parts(answered),
            status=answered.status,
            thread_id=prompt.thread_id,
        )
    )


def settle_ticket(ticket: Ticket, lock: ChatLock) -> bool:
    """Take the chat and settle a new row from memory (fast path: nothing is read back).

    For a row that goes to the model, the chat's lock and the row's claim are taken in one
    round trip (:meth:`ChatLock.acquire_and_claim`).

    Args:
        ticket: The row's prepared work.
        lock: The chat's lock, not held yet.

    Returns:
        False when another settler holds the chat (it settles this row too); True when the
        lock is now held (and the row settled).

    Raises:
        RowFailed: When answering or sending failed (the lock may be held: release it).
        ReplyDeferred: When the reply waits for the flood limits (the same).
    """
    try:
        if ticket.prompt is None:
            if not lock.acquire():
                return False
            reply = ticket.reply
            outbox = Outbox(
                ticket.request_id,
                ticket.chat_id,
                reply_parts(reply),
                status=reply.status,
                thread_id=ticket.thread_id,
            )
            send(outbox)
            return True
        with claimed(ticket.request_id, lock) as cancel:
            if cancel is False:
                return False
            if cancel is not None:
                _answer_and_send(ticket.prompt, ticket.reply, cancel)
        return True
    except SendDeferred as exc:
        db.session.rollback()
        raise ReplyDeferred(ticket.request_id, exc.wait) from exc
    except Exception as exc:
        db.session.rollback()
        raise RowFailed(ticket.request_id, exc) from exc


def settle(request_id: int) -> None:
    """Settle a queued row from the database: answer it if pending, then deliver its reply.

    Args:
        request_id: The row.

    Raises:
        RowFailed: When answering or delivering failed.
        ReplyDeferred: When the reply waits for the flood limits.
    """
    try:
        prompt = prepare(request_id)
        asked = None
        if prompt is not None:
            with claimed(request_id) as cancel:
                if cancel is None:
                    raise ClaimHeld(f"request {request_id} is being answered elsewhere")
                asked = ask(prompt, cancel)
        with cpu_slots.held():  # one turn in the queue for the record and the reply
            if asked is not None:
                record(*asked)
            deliver(request_id)
    except SendDeferred as exc:
        db.session.rollback()
        raise ReplyDeferred(request_id, exc.wait) from exc
    except Exception as exc:
        db.session.rollback()
        raise RowFailed(request_id, exc) from exc


def work_chat(chat_id: int, outcome: Intake | None = None, update_id: int | None = None) -> None:
    """Settle the chat's open rows in order, unless another task holds the chat.

    Args:
        chat_id: The chat.
        outcome: The intake of the task's own row: its ticket is settled from memory when no
            older reply of the chat is open.
        update_id: The update of that row, taken out of the chat's inbox with the lock.

    Raises:
        RowFailed: When a row could not be settled (the lock is released first).
        ReplyDeferred: When a reply waits for the flood limits (the lock is released first).
    """
    lock = ChatLock(chat_id, update_id)
    # A chat held by another task is marked dirty in the same step that finds it taken: the
    # holder settles our row, since it cannot release while the chat is dirty.
    try:
        if outcome is not None and outcome.ticket is not None and not outcome.older_open:
            if not settle_ticket(outcome.ticket, lock):  # one row: the lease outlives the task
                return
            scan = False
        elif lock.acquire():
            scan = True
        else:
            return
        while True:
            if scan:
                while (request_id := next_open(chat_id)) is not None:
                    settle(request_id)  # the lease keeper keeps the lock alive meanwhile
            if lock.release_if_clean():
                return
            scan = True
    except BaseException:
        # The task retries; its scan then settles whatever queued meanwhile. If Redis is what
        # failed, the lock's lease lapses on its own: the original error is the one to report.
        with suppress(Exception):
            lock.release()
        raise


def stop_chat(chat_id: int, user_id: int | None = None) -> bool:
    """/stop: end the answer being written in a chat, whichever process writes it.

    The chat's oldest pending row is the one being answered (a chat's rows are answered in
    order); its generation stops within a second, or at its start if it has not started yet,
    and what was written is delivered as the answer (``stopped``). In a group only the
    sender's own question is stopped (``user_id``), never another member's.

    Args:
        chat_id: The chat.
        user_id: In a group, the sender's row id: only their pending row is stopped.

    Returns:
        Whether there was an answer to stop.
    """
    query = (
        select(Request.id)
        .where(
            Request.chat_id == chat_id,
            Request.status == RequestStatus.PENDING,
            Request.delivered_at.is_(None),
            Request.request_at >= utcnow() - QUEUE_WINDOW,
        )
        .order_by(Request.id)
        .limit(1)
    )
    if user_id is not None:
        query = query.where(Request.user_id == user_id)
    request_id = db.session.scalar(query)
    if request_id is None:
        return False
    generations.stop(request_id)
    logger.info("stop requested chat_id=%s request_id=%s", chat_id, request_id)
    return True


def give_up(request_id: int, error: BaseException) -> None:
    """Last resort after the task's retries: the row fails and the user gets the apology.

    An answer that was produced but could never be delivered counts as failed too (its text
    stays in the row for the admin); a refusal stays a refusal. If even the apology cannot be
    sent, the reply is settled anyway so the chat's queue moves on.

    Args:
        request_id: The row that kept failing.
        error: What kept failing (recorded, redacted, for the admin).

    Raises:
        ReplyDeferred: When the flood limits hold the apology back (send it later).
    """
    db.session.rollback()
    try:
        row = db.session.get(Request, request_id)
        if row is None or row.delivered_at is not None:
            return
        if row.status in (RequestStatus.PENDING, RequestStatus.OK):
            row.status = RequestStatus.ERROR
            row.error_kind = ErrorKind.GAVE_UP
            row.error = redact(f"gave up: {type(error).__name__}: {error}")[:2000]
            row.delivered_parts = 0
        db.session.commit()
    finally:
        db.session.close()
    try:
        deliver(request_id)
    except SendDeferred as exc:  # the flood limits: the apology goes later, not never
        raise ReplyDeferred(request_id, exc.wait) from exc
    except Exception:  # Telegram itself may be what fails: settle, so the chat moves on
        logger.exception("could not deliver the apology request_id=%s", request_id)
        try:
            row = db.session.get(Request, request_id)
            if row is not None and row.delivered_at is None:
                row.delivered_at = utcnow()
                db.session.commit()
        finally:
            db.session.close()
