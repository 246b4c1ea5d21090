"""Tests of the Telegram handlers, called directly."""
