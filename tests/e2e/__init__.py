"""End-to-end tests: several real processes driven together."""
