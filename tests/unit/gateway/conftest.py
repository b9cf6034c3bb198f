"""Fixtures of the gateway tests (defined in tests.support.gateway)."""

from tests.support.gateway import database_url, gw, home, server  # noqa: F401 - pytest fixtures
# from tests.support.gateway, in tests/conftest.py (shared session fixtures): agents, home_templates, town
