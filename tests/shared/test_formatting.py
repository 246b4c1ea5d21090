"""Splitting long answers and rendering Markdown as Telegram HTML."""

from __future__ import annotations

import re

from shared.telegram.formatting import TELEGRAM_MAX_LENGTH, split_markdown, to_telegram_html


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_short_text_is_one_part() -> None:
    """Text under the limit is not split."""
    assert split_markdown("hello\n\nworld") == ["hello\n\nworld"]
    assert split_markdown("  \n ") == []


def test_long_text_splits_on_paragraphs_and_keeps_everything() -> None:
    """Parts stay under the limit, split at paragraph ends, and add up to the text."""
    text = "\n\n".join(f"Paragraph {i} " + "word " * 80 for i in range(40))
    parts = split_markdown(text)
    assert len(parts) > 2
    assert all(len(part) <= TELEGRAM_MAX_LENGTH for part in parts)
    assert all(part.startswith("Paragraph") for part in parts)
    assert _squash(" ".join(parts)) == _squash(text)


def test_a_single_huge_line_is_cut_on_words() -> None:
    """A line longer than a message is cut between words."""
    text = "abc " * 3000
    parts = split_markdown(text)
    assert all(len(part) <= TELEGRAM_MAX_LENGTH for part in parts)
    assert _squash(" ".join(parts)) == _squash(text)


def test_code_blocks_are_closed_and_reopened_across_parts() -> None:
    """A split inside a fenced block closes it and reopens it with the same language."""
    code = "".join(f"print({i})  # a line of code\n" for i in range(400))
    text = f"Intro\n\n```python\n{code}```\nOutro"
    parts = split_markdown(text)
    assert len(parts) >= 3
    for part in parts:
        assert part.count("```") % 2 == 0, "every part has balanced fences"
    assert parts[1].startswith("```python\n")
    rendered = [to_telegram_html(part) for part in parts]
    assert all("<pre>" in html or "Outro" in html or "Intro" in html for html in rendered)
    body = "".join(parts).replace("```python\n", "").replace("```", "")
    assert all(f"print({i})" in body for i in range(400))


def test_rendering_escapes_everything_but_formatting() -> None:
    """Markdown becomes tags; stray HTML and ampersands are escaped."""
    html = to_telegram_html("**bold** <script>x</script> & `a<b`")
    assert "<b>bold</b>" in html
    assert "&lt;script&gt;" in html and "&amp;" in html
    assert "<code>a&lt;b</code>" in html
