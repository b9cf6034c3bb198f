"""Fixtures of the gateway tests (defined in gateway_support)."""

from tests.gateway.gateway_support import agents, database_url, gw, home, server, town  # noqa: F401 - pytest fixtures
