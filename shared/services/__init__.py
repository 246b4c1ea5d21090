"""Business logic, one module per area. Web views, bot handlers and tasks call these and stay thin.

Rules: services add and flush; the caller (request or task) commits. Services never hold a
database session across a slow LLM or Telegram call.
"""
