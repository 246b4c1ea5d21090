"""Everything that speaks Telegram's language: the listener, the dispatcher, handlers.

Handlers stay thin and call ``shared.services``; user-facing strings live in
``shared.telegram.texts``.
"""
