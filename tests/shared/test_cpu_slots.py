"""``shared.green.CpuSlots``: a burst through the CPU-heavy steps in arrival order.

The slots exist only in a process gevent has patched, so the scenarios run in a child process
(this test process is not patched) and report what they saw as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flask import Flask

from shared.extensions import cpu_slots

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
from gevent import monkey; monkey.patch_all()
import json, sys
import gevent
sys.path.insert(0, sys.argv[1])
from flask import Flask
from shared.config import Config
from shared.extensions import cpu_slots
from shared.green import OPEN_PER_SLOT

def app_with(slots):
    app = Flask("slots")
    env = {"SECRET_KEY": "x", "WORKER_CPU_SLOTS": str(slots)}
    app.config["AI_ROUTER"] = Config.from_env(env, load_env_file=False)
    cpu_slots.init_app(app)
    return app

def burst(app, count, body):
    inside, peak, order = [0], [0], []
    def one(number):
        with app.app_context(), cpu_slots.held():
            order.append(number)
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            body(number)
            inside[0] -= 1
    gevent.joinall([gevent.spawn(one, n) for n in range(count)], raise_error=True)
    return peak[0], order

results = {}
app = app_with(3)
results["peak"], results["order"] = burst(app, 10, lambda n: gevent.sleep(0.01))

events = []
def pausing(number):
    if number == 0:
        with cpu_slots.released():
            gevent.sleep(0.05)  # a flood-limit wait: its slot serves the others meanwhile
        events.append("0 back")
    else:
        events.append(f"{number} done")
single = app_with(1)
burst(single, 3, pausing)
results["released_events"] = events

def nested(number):
    with cpu_slots.held():  # the same slot: no deadlock with one slot
        gevent.sleep(0)
results["nested_peak"], _ = burst(single, 2, nested)

crowd = OPEN_PER_SLOT + 6
results["crowd_peak"], results["crowd_order"] = burst(single, crowd, lambda n: gevent.sleep(0.01))
results["crowd"] = crowd
results["after_crowd_peak"], _ = burst(single, 3, lambda n: gevent.sleep(0.01))

off = app_with(0)
results["off_peak"], _ = burst(off, 5, lambda n: gevent.sleep(0.01))
print(json.dumps(results))
"""


def _child() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ROOT)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_slots_keep_a_burst_in_arrival_order() -> None:
    """Three slots, ten greenlets: never more than three inside, entered in arrival order."""
    results = _child()
    assert results["peak"] == 3
    assert results["order"] == list(range(10))
    # a wait for a flood limit gives the slot back: the others ran meanwhile, in order
    assert results["released_events"] == ["1 done", "2 done", "0 back"]
    assert results["nested_peak"] == 1
    # a backlog longer than OPEN_PER_SLOT per slot opens the gate: more than one inside, and
    # nobody overtaken; once the backlog is gone the gate closes again
    assert 1 < results["crowd_peak"] <= results["crowd"]
    assert results["crowd_order"] == list(range(results["crowd"]))
    assert results["after_crowd_peak"] == 1
    assert results["off_peak"] == 5  # 0 slots: no gate


def test_outside_a_gevent_worker_the_slots_do_nothing(app: Flask) -> None:
    """The web, the listener, the thread pool and this test process have no gate."""
    with app.app_context():
        assert app.extensions["cpu_slots"] is None
        with cpu_slots.held(), cpu_slots.held(), cpu_slots.released():
            pass
