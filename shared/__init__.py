"""Framework-light core shared by the web app, the bot listener and the Celery workers.

What belongs here: configuration (``config``), the database object (``db``), SQLAlchemy models
(``models/``), business logic (``services/``), the Redis client factory (``redis``), Celery wiring
(``celery_setup``), logging setup and the ``make run`` launcher. Nothing here may connect to a
database, Redis or Telegram at import time.
"""
