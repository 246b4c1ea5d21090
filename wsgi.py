"""WSGI entry point: ``flask run`` and ``gunicorn wsgi:app`` find the app here."""

from web import create_app

app = create_app()
