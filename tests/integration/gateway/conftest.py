"""Fixtures of the gateway tests (defined in tests.support.gateway)."""

from tests.support.gateway import agents, database_url, gw, home, home_templates, server, town  # noqa: F401 - pytest fixtures
