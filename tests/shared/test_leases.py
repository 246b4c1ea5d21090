"""Leases (``shared.services.leases``): renewed while held, never someone else's."""

from __future__ import annotations

from typing import Any

from flask import Flask

from shared.extensions import leases
from shared.redis import KEY_PREFIX
from shared.services.updates import claim_update, finish_update


def test_a_held_lease_is_renewed_and_a_lost_one_is_left_alone(app: Flask, redis: Any) -> None:
    """renew() extends our keys to a full lease; a key that now holds another token is not ours."""
    mine, lost = f"{KEY_PREFIX}test:lease:mine", f"{KEY_PREFIX}test:lease:lost"
    with app.app_context():
        lease_ms = app.config["AI_ROUTER"].lease_seconds * 1000
        redis.set(mine, "t1", px=1000)
        redis.set(lost, "someone-else", px=1000)
        leases.hold(mine, "t1")
        leases.hold(lost, "t2")  # it lapsed and was taken meanwhile
        assert leases.renew() == 1
        assert lease_ms - 1000 < redis.pttl(mine) <= lease_ms
        assert redis.pttl(lost) <= 1000 and redis.get(lost) in ("someone-else", b"someone-else")
        leases.drop(mine)
        leases.drop(lost)
        assert leases.renew() == 0


def test_a_commands_claim_is_a_lease_until_it_is_finished(app: Flask, redis: Any) -> None:
    """While handled the claim is held (a redelivery waits); done is remembered for a day."""
    with app.app_context():
        assert claim_update(42)
        assert not claim_update(42)
        ttl = redis.ttl(f"{KEY_PREFIX}update:42")
        assert 0 < ttl <= app.config["AI_ROUTER"].lease_seconds
        assert leases.renew() >= 1
        finish_update(42)
        assert not claim_update(42)
        assert redis.ttl(f"{KEY_PREFIX}update:42") > 3600
