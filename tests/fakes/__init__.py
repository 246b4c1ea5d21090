"""In-process fakes of the external services ai_router talks to, for tests."""
