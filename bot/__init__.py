"""Everything that speaks Telegram's language: the listener, the dispatcher, handlers, texts.

Handlers stay thin and call ``shared.services``; user-facing strings live in ``bot.texts``.
"""
