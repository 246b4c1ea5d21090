"""The pacer: lanes booked atomically in Redis, priorities, closed lanes, unreachable chats.

Every test drives the real Lua scripts on the real Redis. Two pacers built on two separate apps
stand for two workers (or hosts): they share nothing but Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from shared.extensions import redis_store
from shared.telegram.pacer import PaceLimits, Pacer, Priority, Verdict

CHAT = 4242
LIMITS = PaceLimits(global_per_second=30, chat_per_second=1, chat_burst=2)


@pytest.fixture()
def pacer(app: Flask) -> Iterator[Pacer]:
    """A pacer on the test app's Redis."""
    with app.app_context():
        yield Pacer(redis_store, LIMITS)


@pytest.fixture()
def other_worker(second_process: Flask) -> Iterator[Pacer]:
    """A second app (its own Redis client and scripts) on the same Redis: another worker."""
    with second_process.app_context():
        yield Pacer(redis_store, LIMITS)


def test_answers_book_slots_in_order(pacer: Pacer) -> None:
    """A chat's burst goes at once; the next answer is booked a second later, then the next."""
    slots = [pacer.acquire(CHAT, Priority.ANSWER, horizon=10) for _ in range(4)]
    assert [s.verdict for s in slots] == [Verdict.GO] * 4
    assert slots[0].wait == slots[1].wait == 0
    assert 0.5 < slots[2].wait <= 1.0 < slots[3].wait <= 2.0
    assert pacer.acquire(CHAT + 1, Priority.ANSWER).wait == 0  # another chat, own lane


def test_a_slot_beyond_the_horizon_is_not_booked(pacer: Pacer) -> None:
    """An answer that would wait past its horizon books nothing (its task is deferred)."""
    for _ in range(3):
        pacer.acquire(CHAT, Priority.ANSWER, horizon=10)
    beyond = pacer.acquire(CHAT, Priority.ANSWER, horizon=0.5)
    assert beyond.verdict is Verdict.BEYOND and beyond.wait > 0.5
    booked = pacer.acquire(CHAT, Priority.ANSWER, horizon=10)
    assert booked.wait < beyond.wait + 0.1  # the refused one took no slot


def test_drafts_take_only_spare_room(pacer: Pacer) -> None:
    """A draft never waits, and leaves a chat's last token to the final message."""
    assert pacer.acquire(CHAT, Priority.DRAFT).verdict is Verdict.GO
    assert pacer.acquire(CHAT, Priority.DRAFT).verdict is Verdict.SKIP
    assert pacer.acquire(CHAT, Priority.ANSWER).wait == 0  # the final is not held back


def test_typing_once_per_five_seconds(pacer: Pacer) -> None:
    """'typing…' goes at most once per 5 s per chat, and books nothing."""
    assert pacer.acquire(CHAT, Priority.TYPING).verdict is Verdict.GO
    assert pacer.acquire(CHAT, Priority.TYPING).verdict is Verdict.SKIP
    assert pacer.acquire(CHAT + 1, Priority.TYPING).verdict is Verdict.GO
    assert pacer.acquire(CHAT, Priority.ANSWER).wait == 0
    assert pacer.acquire(CHAT, Priority.ANSWER).wait == 0  # the chat's burst is untouched


def test_global_lane_paces_every_chat(pacer: Pacer) -> None:
    """Answers to different chats fill the global calendar: 3 per 100 ms, 30 per second."""
    waits = [pacer.acquire(CHAT + i, Priority.ANSWER, horizon=10).wait for i in range(61)]
    assert all(later >= earlier - 0.01 for earlier, later in zip(waits, waits[1:], strict=False))
    assert waits[2] < 0.1 and waits[3] > 0  # the current bucket holds three
    # 30 per bucket-aligned second (the first bucket is partly gone when the burst starts)
    assert 0.85 < waits[30] and waits[59] < 2.0 and 1.85 < waits[60]


def test_a_waiting_chat_does_not_hold_back_the_others(pacer: Pacer) -> None:
    """A chat booked seconds ahead leaves the global lane's earlier buckets to other chats."""
    pacer.close(CHAT, 3)
    assert pacer.acquire(CHAT, Priority.ANSWER, horizon=10).wait > 2
    assert pacer.acquire(CHAT + 1, Priority.ANSWER, horizon=10).wait < 0.1


def test_no_global_lane_when_the_rate_is_zero(app: Flask) -> None:
    """TELEGRAM_GLOBAL_RATE=0: only chat lanes apply."""
    with app.app_context():
        unlimited = Pacer(redis_store, PaceLimits(global_per_second=0))
        assert all(unlimited.acquire(CHAT + i, Priority.ANSWER).wait == 0 for i in range(100))


def test_a_429_closes_the_lane_for_every_worker(pacer: Pacer, other_worker: Pacer) -> None:
    """After a 429 seen by one worker, another books no earlier than retry_after."""
    assert not pacer.close(CHAT, 3)
    slot = other_worker.acquire(CHAT, Priority.ANSWER, horizon=10)
    assert slot.verdict is Verdict.GO and 2.5 < slot.wait <= 3.0
    assert other_worker.closed_for(CHAT) > 2
    assert other_worker.acquire(CHAT, Priority.DRAFT).verdict is Verdict.SKIP
    assert other_worker.acquire(CHAT + 1, Priority.ANSWER).wait == 0  # the bot is not closed


def test_429s_from_several_chats_close_the_bot(pacer: Pacer, other_worker: Pacer) -> None:
    """429s from three chats within a second close the global lane for everyone."""
    assert [pacer.close(CHAT + i, 2) for i in range(3)] == [False, False, True]
    slot = other_worker.acquire(CHAT + 10, Priority.ANSWER, horizon=10)
    assert 1.5 < slot.wait <= 2.0


def test_unreachable_chat_is_refused_until_reachable(pacer: Pacer, other_worker: Pacer) -> None:
    """A chat marked unreachable gets nothing from any worker until it is marked reachable."""
    pacer.set_reachable(CHAT, False)
    for priority in Priority:
        assert other_worker.acquire(CHAT, priority).verdict is Verdict.UNREACHABLE
    pacer.set_reachable(CHAT, True)
    assert other_worker.acquire(CHAT, Priority.ANSWER).verdict is Verdict.GO


def test_group_lane_is_twenty_per_minute(pacer: Pacer) -> None:
    """A group's answers are spaced about 3 s apart (20 per minute, with a margin)."""
    waits = [pacer.acquire(-100, Priority.ANSWER, horizon=120).wait for _ in range(21)]
    assert waits[0] == 0 and waits[1] >= 3.0
    assert waits[20] >= 60.0  # never 21 within a minute


def test_typing_ignores_the_chat_lane_but_not_a_closed_one(pacer: Pacer) -> None:
    """'typing…' books nothing, so a busy group still sees it; a closed chat does not."""
    pacer.acquire(-100, Priority.ANSWER, horizon=10)
    assert pacer.acquire(-100, Priority.TYPING).verdict is Verdict.GO
    pacer.close(CHAT, 5)
    assert pacer.acquire(CHAT, Priority.TYPING).verdict is Verdict.SKIP
