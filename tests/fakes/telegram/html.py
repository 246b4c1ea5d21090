"""Telegram's HTML parser: a port of TDLib's ``parse_html``, and Telegram's text trimming.

Pure functions, no state: :func:`parse_html` turns ``parse_mode=HTML`` text into plain text and
entities (offsets in UTF-16 code units, :func:`utf16_length`) or raises :class:`HtmlParseError`
with Telegram's explanation; :func:`_strip_text` trims the result like Telegram does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_INTEGER_RE = re.compile(r"-?\d+")


class HtmlParseError(ValueError):
    """Raised by :func:`parse_html` for text Telegram would reject (``can't parse entities``)."""


_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SIMPLE_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
}
_NAMED_HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_SPACE = " \t\r\n\f\v"


def utf16_length(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram's entity offsets.

    Args:
        text: Any string.

    Returns:
        The number of UTF-16 code units.
    """
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_html_entity(text: str, pos: int, *, strict: bool) -> tuple[str | None, int]:
    """Decode the character reference at ``text[pos] == "&"``.

    Returns:
        The decoded character and the index after the reference, or (None, pos) when ``pos``
        does not start a reference Telegram understands. In strict mode the ``;`` is required.
    """
    end = pos + 1
    length = len(text)
    code = 0
    if end < length and text[end] == "#":
        end += 1
        if end < length and text[end] == "x":
            end += 1
            digits_start = end
            while end < length and text[end] in "0123456789abcdefABCDEF":
                code = code * 16 + int(text[end], 16)
                end += 1
                if code >= 0x10FFFF:
                    return None, pos
        else:
            digits_start = end
            while end < length and "0" <= text[end] <= "9":
                code = code * 10 + int(text[end])
                end += 1
                if code >= 0x10FFFF:
                    return None, pos
        if end == digits_start or code == 0 or 0xD800 <= code <= 0xDFFF:
            return None, pos
        char = chr(code)
    else:
        while end < length and text[end].isascii() and text[end].isalpha():
            end += 1
        name = text[pos + 1 : end]
        if name not in _NAMED_HTML_ENTITIES:
            return None, pos
        char = _NAMED_HTML_ENTITIES[name]
    if end < length and text[end] == ";":
        return char, end + 1
    if strict:
        return None, pos
    return char, end


@dataclass
class _OpenTag:
    name: str
    argument: str
    offset: int  # UTF-16 offset in the parsed text
    out_index: int  # index into the output pieces
    begin: int  # index of "<" in the source


def parse_html(text: str, *, strict_entities: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-flavoured HTML into plain text and message entities.

    A port of TDLib's ``parse_html``: only Telegram's tags are allowed, tags must be properly
    nested and closed, a bare ``<`` is an error, and the error messages are Telegram's.

    Args:
        text: The text as sent with ``parse_mode=HTML``.
        strict_entities: Reject a ``&`` that does not start ``&lt;``, ``&gt;``, ``&amp;``,
            ``&quot;`` or ``&#NN;``/``&#xNN;`` (Telegram itself keeps such a ``&`` literally and
            accepts a missing ``;``).

    Returns:
        The plain text (tags stripped, references decoded; not yet trimmed) and its entities,
        with ``offset``/``length`` in UTF-16 code units, sorted like Telegram sorts them.

    Raises:
        HtmlParseError: With Telegram's explanation, for text Telegram would reject.
    """
    out: list[str] = []
    offset16 = 0
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    length = len(text)
    i = 0

    def fail(message: str) -> HtmlParseError:
        return HtmlParseError(message)

    while i < length:
        char = text[i]
        if char == "&":
            decoded, end = _decode_html_entity(text, i, strict=strict_entities)
            if decoded is not None:
                out.append(decoded)
                offset16 += utf16_length(decoded)
                i = end
                continue
            if strict_entities:
                raise fail(
                    f'Character "&" must be escaped as "&amp;" at byte offset '
                    f"{_byte_offset(text, i)}"
                )
        if char != "<":
            out.append(char)
            offset16 += utf16_length(char)
            i += 1
            continue

        begin = i
        i += 1
        if i < length and text[i] == "/":
            # An end tag.
            if not stack:
                raise fail(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
            j = i + 1
            while j < length and text[j] not in _HTML_SPACE and text[j] != ">":
                j += 1
            end_name = text[i + 1 : j].lower()
            while j < length and text[j] in _HTML_SPACE:
                j += 1
            if j >= length or text[j] != ">":
                raise fail(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
            tag = stack.pop()
            if end_name and end_name != tag.name:
                raise fail(
                    f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
                    f'expected "</{tag.name}>", found "</{end_name}>"'
                )
            _close_html_tag(tag, offset16, out, entities)
            i = j + 1
            continue

        # A start tag.
        j = i
        while j < length and text[j] not in _HTML_SPACE and text[j] != ">":
            j += 1
        if j >= length:
            raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        name = text[i:j].lower()
        if name not in _HTML_TAGS:
            raise fail(f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, begin)}')
        argument = ""
        while True:
            while j < length and text[j] in _HTML_SPACE:
                j += 1
            if j >= length:
                raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
            if text[j] == ">":
                break
            attribute_begin = j
            while j < length and text[j] not in _HTML_SPACE and text[j] not in "=>":
                j += 1
            attribute = text[attribute_begin:j].lower()
            if not attribute:
                raise fail(
                    f'Empty attribute name in the tag "{name}" at byte offset '
                    f"{_byte_offset(text, begin)}"
                )
            while j < length and text[j] in _HTML_SPACE:
                j += 1
            if j >= length:
                raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
            if text[j] != "=":
                if name == "blockquote" and attribute == "expandable":
                    argument = "expandable"
                    continue
                raise fail(
                    f'Expected equal sign in declaration of an attribute of the tag "{name}" '
                    f"at byte offset {_byte_offset(text, begin)}"
                )
            j += 1
            while j < length and text[j] in _HTML_SPACE:
                j += 1
            if j >= length:
                raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
            if text[j] in "'\"":
                quote = text[j]
                j += 1
                value_chars: list[str] = []
                while j < length and text[j] != quote:
                    if text[j] == "&":
                        decoded, end = _decode_html_entity(text, j, strict=strict_entities)
                        if decoded is not None:
                            value_chars.append(decoded)
                            j = end
                            continue
                        if strict_entities:
                            raise fail(
                                f'Character "&" must be escaped as "&amp;" at byte offset '
                                f"{_byte_offset(text, j)}"
                            )
                    value_chars.append(text[j])
                    j += 1
                if j >= length:
                    raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
                j += 1
                value = "".join(value_chars)
            else:
                token_begin = j
                while j < length and ((text[j].isascii() and text[j].isalnum()) or text[j] in ".-"):
                    j += 1
                value = text[token_begin:j].lower()
                if j >= length:
                    raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
                if text[j] not in _HTML_SPACE and text[j] != ">":
                    raise fail(
                        f"Unexpected end of name token at byte offset "
                        f"{_byte_offset(text, token_begin)}"
                    )
            if name == "a" and attribute == "href":
                argument = value
            elif name == "code" and attribute == "class" and value.startswith("language-"):
                argument = value[len("language-") :]
            elif name == "span" and attribute == "class" and value.startswith("tg-"):
                argument = value[len("tg-") :]
            elif name == "tg-emoji" and attribute == "emoji-id":
                argument = value
            elif name == "blockquote" and attribute == "expandable":
                argument = "expandable"
        if name == "span" and argument != "spoiler":
            raise fail(
                f'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{_byte_offset(text, begin)}"
            )
        stack.append(_OpenTag(name, argument, offset16, len(out), begin))
        i = j + 1

    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    for entity in entities:
        entity.pop("_language", None)
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _close_html_tag(
    tag: _OpenTag, offset16: int, out: list[str], entities: list[dict[str, Any]]
) -> None:
    """Turn a closed tag into an entity (none for an empty one)."""
    length16 = offset16 - tag.offset
    if tag.name == "tg-emoji" and not _INTEGER_RE.fullmatch(tag.argument or "x"):
        raise HtmlParseError("Invalid custom emoji identifier specified")
    if length16 <= 0:
        return
    entity: dict[str, Any] = {"offset": tag.offset, "length": length16}
    if tag.name in ("a",):
        url = tag.argument or "".join(out[tag.out_index :])
        match = re.fullmatch(r"tg://user\?id=(\d+)", url)
        if match:
            entity["type"] = "text_mention"
            entity["user"] = {"id": int(match.group(1)), "is_bot": False, "first_name": ""}
        else:
            entity["type"] = "text_link"
            entity["url"] = url
    elif tag.name == "tg-emoji":
        entity["type"] = "custom_emoji"
        entity["custom_emoji_id"] = tag.argument
    elif tag.name == "blockquote":
        entity["type"] = "expandable_blockquote" if tag.argument else "blockquote"
    elif tag.name == "code":
        entity["type"] = "code"
        if tag.argument:
            entity["_language"] = tag.argument
    elif tag.name == "pre":
        entity["type"] = "pre"
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "code"
            and last["offset"] == tag.offset
            and last["length"] == length16
        ):
            # <pre><code class="language-x">...</code></pre> is one pre entity with a language.
            entities.pop()
            if last.get("_language"):
                entity["language"] = last["_language"]
    else:
        entity["type"] = _SIMPLE_ENTITY_TYPES[tag.name]
    entities.append(entity)


def _strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim leading/trailing whitespace like Telegram, shifting and clipping the entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    left16 = utf16_length(text[: len(text) - len(text.lstrip())])
    total16 = utf16_length(stripped)
    kept = []
    for entity in entities:
        start = max(0, entity["offset"] - left16)
        end = min(total16, entity["offset"] + entity["length"] - left16)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept
