"""Fixtures of the agents tests (defined in tests.support.agents)."""

from tests.support.agents import municipality  # noqa: F401 - pytest fixtures
