"""The Telegram adapter: the Bot API client extension, the bot's texts, keyboards and formatting.

Everything here is shared by the web app, the listener and the worker; the handlers that react
to updates live in ``bot/`` and only the worker loads them.
"""
