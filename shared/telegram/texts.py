"""Every user-facing string of the bot, in Russian (the default) and English.

Pick a language with :func:`lang_of` (Telegram's ``language_code``) and a text with :func:`t`.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

RU = "ru"
EN = "en"

TEXTS: dict[str, dict[str, str]] = {
    "start": {
        RU: "Здравствуйте, {name}! Я отвечаю на вопросы с помощью языковой модели.\n"
        "Просто напишите сообщение. Я помню контекст, пока вы не начнёте новый диалог.\n\n"
        "/help — список команд",
        EN: "Hello, {name}! I answer questions with a language model.\n"
        "Just write a message. I remember the context until you start a new dialog.\n\n"
        "/help — list of commands",
    },
    "start_pending": {
        RU: "Здравствуйте, {name}! Ваша заявка на доступ отправлена администратору. "
        "Я напишу, как только доступ будет открыт.",
        EN: "Hello, {name}! Your access request was sent to the administrator.",
    },
    "help": {
        RU: "Команды:\n"
        "/start — начало работы\n"
        "/help — эта справка\n"
        "/settings — режим ответа и модель\n"
        "/new — начать новый диалог\n"
        "/usage — тариф и остаток лимитов\n"
        "/buy — купить тариф за Telegram Stars\n"
        "/stop — остановить ответ, который я пишу\n\n"
        "Пишите вопросы обычным текстом: в рамках диалога я помню предыдущие сообщения. "
        "Можно прислать фото (с вопросом в подписи), голосовое сообщение или текстовый файл.\n"
        "В группе обращайтесь ко мне через @упоминание или ответом на моё сообщение.",
        EN: "Commands:\n"
        "/start — get started\n"
        "/help — this help\n"
        "/settings — answer mode and model\n"
        "/new — start a new dialog\n"
        "/usage — your plan and what is left\n"
        "/buy — buy a plan with Telegram Stars\n"
        "/stop — stop the answer I am writing\n\n"
        "Write your questions as plain text: within a dialog I remember earlier messages. "
        "You can also send a photo (with the question as its caption), a voice message or a "
        "text file.\nIn a group, @mention me or reply to my message.",
    },
    "settings": {
        RU: "Режим ответа: {mode}\nМодель: {model}\n\nВыберите режим или модель:",
        EN: "Answer mode: {mode}\nModel: {model}\n\nChoose a mode or a model:",
    },
    "not_set": {RU: "не выбрана", EN: "not set"},
    "mode_set": {RU: "Режим: {name}", EN: "Mode: {name}"},
    "model_set": {RU: "Модель: {name}", EN: "Model: {name}"},
    "unavailable_choice": {RU: "Этот вариант недоступен", EN: "This option is not available"},
    "new_dialog_button": {RU: "Начать новый диалог", EN: "Start a new dialog"},
    "new_dialog": {
        RU: "Начат новый диалог. Предыдущий контекст забыт.",
        EN: "A new dialog has started. The previous context is forgotten.",
    },
    "new_dialog_toast": {RU: "Новый диалог", EN: "New dialog"},
    "denied_blocked": {
        RU: "Доступ к боту закрыт. Обратитесь к администратору.",
        EN: "Your access to this bot is closed. Please contact the administrator.",
    },
    "denied_pending": {
        RU: "Ваша заявка на доступ ещё не одобрена администратором.",
        EN: "Your access request has not been approved yet.",
    },
    "denied_limit": {
        RU: "Вы исчерпали дневной лимит запросов. Попробуйте завтра.",
        EN: "You have used up today's requests. Please try again tomorrow.",
    },
    "limit_requests_per_day": {
        RU: "Вы исчерпали дневной лимит запросов вашего тарифа ({limit}). "
        "Лимит обновится {resets}.",
        EN: "You have used all {limit} requests of your plan for today. The limit resets {resets}.",
    },
    "limit_tokens_per_day": {
        RU: "Вы исчерпали дневной лимит токенов вашего тарифа ({limit}). Лимит обновится {resets}.",
        EN: "You have used your plan's {limit} tokens for today. The limit resets {resets}.",
    },
    "limit_tokens_per_month": {
        RU: "Вы исчерпали месячный лимит токенов вашего тарифа ({limit}). "
        "Лимит обновится {resets}.",
        EN: "You have used your plan's {limit} tokens for this month. The limit resets {resets}.",
    },
    "limit_cost_usd_per_month": {
        RU: "Вы исчерпали месячный бюджет вашего тарифа (${limit}). Лимит обновится {resets}.",
        EN: "You have used your plan's ${limit} budget for this month. The limit resets {resets}.",
    },
    "buy_button": {RU: "⭐ Купить тариф", EN: "⭐ Buy a plan"},
    "plan_button": {
        RU: "{name} — {stars} ⭐ на {days} дн.",
        EN: "{name} — {stars} ⭐ for {days} days",
    },
    "invoice_description": {
        RU: "Доступ по тарифу на {days} дн.",
        EN: "Access under this plan for {days} days",
    },
    "llm_error": {
        RU: "Извините, сейчас не удалось получить ответ от модели. Попробуйте ещё раз чуть позже.",
        EN: "Sorry, the model could not answer right now. Please try again a little later.",
    },
    "no_model": {
        RU: "Извините, бот ещё не настроен: нет доступной модели. Сообщите администратору.",
        EN: "Sorry, the bot is not set up yet: no model is available. Please tell the admin.",
    },
    "text_only": {
        RU: "Я понимаю текст, фото, голосовые сообщения, аудио и текстовые файлы — "
        "такой тип сообщения я пока не читаю.",
        EN: "I understand text, photos, voice messages, audio and text files; "
        "I cannot read this kind of message yet.",
    },
    "denied_group": {
        RU: "В этой группе бот отключён администратором.",
        EN: "The administrator has turned the bot off in this group.",
    },
    "no_vision": {
        RU: "Модель «{model}» не видит изображения. Выберите в /settings модель «{vision}» "
        "и пришлите фото ещё раз.",
        EN: "The model «{model}» cannot see images. Choose «{vision}» in /settings "
        "and send the photo again.",
    },
    "no_vision_none": {
        RU: "Здесь нет модели, которая видит изображения. Опишите картинку текстом.",
        EN: "No model here can see images. Please describe the picture in text.",
    },
    "no_voice": {
        RU: "Голосовые сообщения здесь не распознаются. Напишите, пожалуйста, текстом.",
        EN: "Voice messages cannot be transcribed here. Please write your question as text.",
    },
    "too_long": {
        RU: "Запись слишком длинная: я распознаю до {limit}. Пришлите покороче.",
        EN: "The recording is too long: I transcribe up to {limit}. Please send a shorter one.",
    },
    "too_large": {
        RU: "Файл слишком большой: я читаю файлы до {limit}.",
        EN: "The file is too large: I read files up to {limit}.",
    },
    "unsupported_file": {
        RU: "Я читаю только текстовые файлы: .txt, .md, .csv, .json, исходный код и подобные. "
        "Этот файл я прочитать не могу.",
        EN: "I read text files only: .txt, .md, .csv, .json, source code and the like. "
        "I cannot read this file.",
    },
    "transcription_error": {
        RU: "Не удалось распознать речь в сообщении. Попробуйте ещё раз или напишите текстом.",
        EN: "I could not make out the speech in that message. Try again or write it as text.",
    },
    "file_error": {
        RU: "Не удалось получить файл из Telegram. Пришлите его ещё раз чуть позже.",
        EN: "I could not fetch the file from Telegram. Please send it again a little later.",
    },
    "document_trimmed": {
        RU: "Файл длинный: я прочитал первые {read} из {total} символов.",
        EN: "The file is long: I read the first {read} of its {total} characters.",
    },
    "seconds": {RU: "{n} с", EN: "{n} s"},
    "minutes": {RU: "{n} мин", EN: "{n} min"},
    "kilobytes": {RU: "{n} КБ", EN: "{n} KB"},
    "megabytes": {RU: "{n} МБ", EN: "{n} MB"},
    "stopped": {RU: "⏹ Остановлено", EN: "⏹ Stopped"},
    "nothing_to_stop": {
        RU: "Сейчас нечего останавливать: я ничего не пишу.",
        EN: "There is nothing to stop: I am not writing anything right now.",
    },
    "command_stop": {RU: "Остановить ответ", EN: "Stop the answer"},
    "command_start": {RU: "Начало работы", EN: "Get started"},
    "command_help": {RU: "Справка", EN: "Help"},
    "command_settings": {RU: "Режим и модель", EN: "Mode and model"},
    "command_new": {RU: "Новый диалог", EN: "New dialog"},
    "command_usage": {RU: "Тариф и лимиты", EN: "Plan and limits"},
    "command_buy": {RU: "Купить тариф", EN: "Buy a plan"},
    "usage_plan": {RU: "Тариф: {plan}", EN: "Plan: {plan}"},
    "usage_until": {RU: " (до {date})", EN: " (until {date})"},
    "usage_no_plan": {RU: "без тарифа", EN: "no plan"},
    "usage_today": {RU: "Сегодня (обновится {at}):", EN: "Today (resets {at}):"},
    "usage_month": {RU: "В этом месяце (обновится {at}):", EN: "This month (resets {at}):"},
    "usage_requests_per_day": {RU: "запросы", EN: "requests"},
    "usage_tokens_per_day": {RU: "токены", EN: "tokens"},
    "usage_tokens_per_month": {RU: "токены", EN: "tokens"},
    "usage_cost_usd_per_month": {RU: "расходы, $", EN: "spent, $"},
    "usage_line": {
        RU: "• {what}: {used} из {limit}, осталось {left}",
        EN: "• {what}: {used} of {limit}, {left} left",
    },
    "usage_line_unlimited": {
        RU: "• {what}: {used}, без ограничений",
        EN: "• {what}: {used}, unlimited",
    },
    "buy_list": {
        RU: "Тарифы за Telegram Stars:\n\n{plans}\n\nВыберите тариф — я пришлю счёт.",
        EN: "Plans for Telegram Stars:\n\n{plans}\n\nChoose one and I will send the invoice.",
    },
    "buy_plan_line": {
        RU: "⭐ {name} — {stars} Stars на {days} дн.{description}",
        EN: "⭐ {name} — {stars} Stars for {days} days{description}",
    },
    "buy_nothing": {
        RU: "Сейчас нет тарифов для покупки.",
        EN: "There are no plans on sale right now.",
    },
    "buy_invoice_sent": {RU: "Счёт отправлен", EN: "Invoice sent"},
    "pay_plan_unavailable": {
        RU: "Этот тариф больше не продаётся. Откройте /buy ещё раз.",
        EN: "This plan is no longer on sale. Please open /buy again.",
    },
    "pay_price_changed": {
        RU: "Цена тарифа изменилась. Откройте /buy и оплатите новый счёт.",
        EN: "The plan's price has changed. Please open /buy and pay the new invoice.",
    },
    "paid_thanks": {
        RU: "Спасибо за оплату! Тариф «{plan}» действует до {date}.",
        EN: "Thank you for your payment! Your «{plan}» plan is active until {date}.",
    },
    "paid_thanks_forever": {
        RU: "Спасибо за оплату! Тариф «{plan}» действует бессрочно.",
        EN: "Thank you for your payment! Your «{plan}» plan has no end date.",
    },
    "plan_expired": {
        RU: "Срок тарифа «{plan}» закончился, вы снова на тарифе «{default}».",
        EN: "Your «{plan}» plan has ended; you are back on «{default}».",
    },
    "plan_expires_soon": {
        RU: "Тариф «{plan}» закончится {date}. Продлить его можно через /buy.",
        EN: "Your «{plan}» plan ends on {date}. You can extend it with /buy.",
    },
}


def local_time(moment: datetime, tz_name: str) -> str:
    """A moment as users read it, in a timezone: ``05.01.2027 14:00 (MSK)``.

    Args:
        moment: An aware instant.
        tz_name: IANA timezone (the configured ``STATS_TIMEZONE``).

    Returns:
        The text.
    """
    local = moment.astimezone(ZoneInfo(tz_name))
    return f"{local.strftime('%d.%m.%Y %H:%M')} ({local.tzname()})"


def lang_of(language_code: str | None) -> str:
    """Choose the text language for a Telegram ``language_code``.

    Args:
        language_code: e.g. ``ru``, ``en``, ``en-US``, or None.

    Returns:
        ``en`` for English, ``ru`` for everything else (Russian is the default).
    """
    return EN if (language_code or "").lower().startswith("en") else RU


def t(key: str, lang: str, **values: object) -> str:
    """Return a text in a language, formatted with ``values``.

    Args:
        key: A key of :data:`TEXTS`.
        lang: ``ru`` or ``en``.
        **values: Placeholders of the text.

    Returns:
        The text.

    Raises:
        KeyError: On an unknown key (a bug: every text must exist in both languages).
    """
    variants = TEXTS[key]
    return variants.get(lang, variants[RU]).format(**values)
