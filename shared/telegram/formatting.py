"""LLM Markdown → Telegram: split long answers into message-sized parts, render them as HTML.

Telegram limits a message to 4096 characters of visible text. Answers are split on paragraph,
then line, then word boundaries; a split inside a fenced code block closes the fence at the end
of the part and reopens it (same language) at the start of the next, so no part breaks its code.
Rendering uses ``chatgpt-md-converter``: Markdown becomes Telegram's HTML subset and everything
else is escaped.
"""

from __future__ import annotations

import re

from chatgpt_md_converter import telegram_format

#: Telegram's limit on a message's visible text.
TELEGRAM_MAX_LENGTH = 4096
#: Source characters per part: room for fences reopened across parts and for the renderer.
PART_LENGTH = 3900

_FENCE = re.compile(r"^\s*```(\S*)")


def _pieces(text: str, limit: int) -> list[str]:
    """Cut text into pieces of at most ``limit`` chars, preferring paragraph, line, word ends."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            position = window.rfind(separator)
            if position > limit // 4:
                cut = position + len(separator)
                break
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        pieces.append(rest)
    return pieces


def split_markdown(text: str, limit: int = PART_LENGTH) -> list[str]:
    """Split Markdown into parts that each render to one Telegram message.

    Args:
        text: The LLM's answer.
        limit: Largest part in source characters (reopened fences included).

    Returns:
        Parts in order; their concatenation is ``text`` plus the fence lines added at splits.
        A blank or empty text gives no parts.
    """
    if not text.strip():
        return []
    lines = text.splitlines(keepends=True)
    parts: list[str] = []
    current = ""
    fence: str | None = None  # language of the open code block, "" for a bare fence
    for line in lines:
        for piece in _pieces(line, limit // 2) if len(line) > limit // 2 else [line]:
            closing = "```\n" if fence is not None else ""
            if len(current) + len(piece) + len(closing) > limit and current.strip():
                if fence is not None:
                    current = current if current.endswith("\n") else current + "\n"
                    parts.append(current + "```")
                    current = f"```{fence}\n"
                else:
                    parts.append(current)
                    current = ""
            current += piece
        match = _FENCE.match(line)
        if match:
            fence = None if fence is not None else match.group(1)
    if current.strip():
        parts.append(current)
    return [part.strip("\n") for part in parts if part.strip()]


def to_telegram_html(markdown: str) -> str:
    """Render Markdown as Telegram HTML, escaping everything that is not formatting.

    Args:
        markdown: One part of an answer.

    Returns:
        HTML for ``parse_mode="HTML"``.
    """
    return telegram_format(markdown)
