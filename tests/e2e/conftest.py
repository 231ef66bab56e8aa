"""End-to-end tests use the session `stack` fixture from tests/conftest.py."""
