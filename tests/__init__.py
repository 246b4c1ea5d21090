"""Test suite for ai_router."""
