"""Tests of the fake Telegram Bot API, driven through pyTelegramBotAPI and requests."""
