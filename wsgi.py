"""WSGI entry point: ``flask run`` and ``gunicorn wsgi:app`` find the app here.

Importing this module builds nothing: the app (and with it the configuration, which in
development creates ``instance/secret_key``) is made on first access of ``wsgi.app``.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """Build the web app on first access of ``app`` (PEP 562), then keep it.

    Args:
        name: The attribute asked for.

    Returns:
        The Flask app for ``app``.

    Raises:
        AttributeError: For any other name.
    """
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from shared.heap import freeze_startup_heap
    from web import create_app

    app = globals()["app"] = create_app()
    freeze_startup_heap()  # the app lives as long as the process: keep it out of full GCs
    return app
