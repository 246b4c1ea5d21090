"""HTML parsing (Telegram's parser port) and the text and keyboard limits."""

from __future__ import annotations

import html

import pytest
import telebot

from tests.fakes.telegram import FakeTelegram, HtmlParseError, parse_html
from tests.fakes.telegram.tests.support import CHAT, api_error, inline_keyboard


def test_html_is_parsed_into_text_and_entities(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """The stored text is the parsed text; the call keeps the raw HTML."""
    raw = '<b>Hi</b> &lt;you&gt; &amp; <a href="https://x.example/?a=1&amp;b=2">link</a> &#x1F600;'

    message = bot.send_message(CHAT, raw, parse_mode="HTML")

    assert message.text == "Hi <you> & link 😀"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [
        ("bold", 0, 2),
        ("text_link", 11, 4),
    ]
    assert message.entities[1].url == "https://x.example/?a=1&b=2"
    assert fake_telegram.messages(CHAT)[0]["text"] == "Hi <you> & link 😀"
    assert fake_telegram.calls("sendMessage")[0].params["text"] == raw


@pytest.mark.parametrize(
    ("text", "explanation"),
    [
        ("<script>alert(1)</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("plain</b>", "Unexpected end tag at byte offset 5"),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("a <b", "Unclosed start tag at byte offset 2"),
        ("Tom & Jerry", 'Character "&" must be escaped as "&amp;" at byte offset 4'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
def test_html_violations_are_rejected(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram, text: str, explanation: str
) -> None:
    """Invalid HTML answers 400 can't parse entities, and no message is stored."""
    error = api_error(bot.send_message, CHAT, text, parse_mode="HTML")

    assert error.error_code == 400
    assert error.description == f"Bad Request: can't parse entities: {explanation}"
    assert fake_telegram.messages(CHAT) == []


def test_html_accepts_escaped_text(bot: telebot.TeleBot) -> None:
    """Text escaped with html.escape is accepted and arrives unchanged."""
    original = "<script>alert('x') & \"y\"</script> 1 < 2"

    message = bot.send_message(CHAT, html.escape(original), parse_mode="HTML")

    assert message.text == original
    assert not message.entities


def test_html_allowed_tags() -> None:
    """Every tag Telegram allows parses, with entity offsets in UTF-16 code units."""
    text, entities = parse_html(
        "😀 <b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>"
        '<strike>k</strike><del>d</del><span class="tg-spoiler">p</span><tg-spoiler>q</tg-spoiler>'
        '<a href="https://t.me">a</a><code>c</code><pre><code class="language-python">x=1</code>'
        "</pre><blockquote>q</blockquote><blockquote expandable>w</blockquote><tg-emoji "
        'emoji-id="5368324170671202286">👍</tg-emoji>'
    )

    assert text == "😀 bsieunskdpqacx=1qw👍"
    types_ = [(e["type"], e["offset"], e["length"]) for e in entities]
    assert types_[0] == ("bold", 3, 1)
    assert ("spoiler", 12, 1) in types_
    assert ("pre", 16, 3) in types_
    assert ("expandable_blockquote", 20, 1) in types_
    assert ("custom_emoji", 21, 2) in types_
    pre = next(e for e in entities if e["type"] == "pre")
    assert pre["language"] == "python"


def test_lenient_html_entities_mode_keeps_a_bare_ampersand() -> None:
    """With strict_entities=False a lone & is kept like Telegram does."""
    assert parse_html("Tom & Jerry &lt", strict_entities=False)[0] == "Tom & Jerry <"
    with pytest.raises(HtmlParseError):
        parse_html("Tom & Jerry")


def test_text_is_trimmed_and_entities_shifted(bot: telebot.TeleBot) -> None:
    """Leading and trailing whitespace is dropped, as Telegram does."""
    message = bot.send_message(CHAT, " \n<b>hi</b> there\n\n", parse_mode="HTML")

    assert message.text == "hi there"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bold", 0, 2)]


def test_too_long_and_empty_texts_are_rejected(bot: telebot.TeleBot) -> None:
    """More than 4096 characters after parsing, or no text at all, is a 400."""
    too_long = api_error(bot.send_message, CHAT, "x" * 4097)
    too_long_html = api_error(bot.send_message, CHAT, "&amp;" * 4097, parse_mode="HTML")
    empty = api_error(bot.send_message, CHAT, "   \n ")
    empty_html = api_error(bot.send_message, CHAT, "<b> </b>", parse_mode="HTML")

    assert bot.send_message(CHAT, "x" * 4096).text == "x" * 4096
    assert bot.send_message(CHAT, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    for error in (too_long, too_long_html):
        assert (error.error_code, error.description) == (400, "Bad Request: message is too long")
    for error in (empty, empty_html):
        assert (error.error_code, error.description) == (400, "Bad Request: message text is empty")


def test_callback_data_over_64_bytes_is_rejected(bot: telebot.TeleBot) -> None:
    """Telegram refuses a button whose callback_data exceeds 64 bytes."""
    error = api_error(bot.send_message, CHAT, "x", reply_markup=inline_keyboard("é" * 33))

    assert (error.error_code, error.description) == (400, "Bad Request: BUTTON_DATA_INVALID")
