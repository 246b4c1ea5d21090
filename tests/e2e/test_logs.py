"""JSON log lines (``LOG_FORMAT=json``): one object per event, with the ids of what it concerns."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from flask import Flask

from shared.config import PROJECT_ROOT
from shared.logging import JSON_FIELDS, _JsonLineFormatter
from tests.e2e.conftest import Conversation
from tests.support import wait_until

SCRIPT = """
import logging, os
from shared.config import Config
from shared.logging import configure_logging, log_context
config = Config.from_env(dict(os.environ))
configure_logging("bot", config.log_level, config.log_format)
with log_context(update_id=7, chat_id=None):
    logging.getLogger("bot.listener").warning("token 123456:%s went by", "A" * 30)
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("bot.listener").exception("it failed")
"""


def test_log_format_json_writes_one_object_per_line() -> None:
    """A process started with LOG_FORMAT=json: JSON lines with the context's ids, tokens hidden."""
    env = {**os.environ, "LOG_FORMAT": "json", "INSTANCE_PATH": "/tmp/air-log-test"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(lines) == 2, done.stderr
    first, second = lines
    assert first["level"] == "WARNING" and first["service"] == "bot"
    assert first["logger"] == "bot.listener" and first["update_id"] == 7
    assert "chat_id" not in first and "time" in first
    assert first["message"] == "token 123456:*** went by"
    assert "ZeroDivisionError" in second["exc_info"] and "update_id" not in second


def test_a_tasks_lines_carry_the_update_the_chat_and_the_task(
    app: Flask, conversation: Conversation
) -> None:
    """Inside the real worker: update_id, chat_id, Celery's task id and name."""
    records: list[str] = []
    formatter = _JsonLineFormatter(JSON_FIELDS)

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(formatter.format(record))

    handler = Capture(level=logging.INFO)
    watched = logging.getLogger("shared.services.conversation.intake")
    previous = watched.level
    watched.setLevel(logging.INFO)
    watched.addHandler(handler)
    try:
        update = conversation.say(602, "once", language_code="en")
        conversation.sent(602)
        conversation.deliver(update)  # the same update again: "update seen before"
        wait_until(lambda: records, timeout=30, what="the worker's log line")
    finally:
        watched.removeHandler(handler)
        watched.setLevel(previous)
    line = json.loads(records[0])
    assert line["update_id"] == update["update_id"] and line["chat_id"] == 602
    assert line["task"] == "tasks.replies.answer_text" and line["task_id"]
    assert "seen before" in line["message"]
