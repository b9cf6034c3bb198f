"""Fixtures of the web UI tests (defined in tests.support.web)."""

from tests.support.web import browser, context, site, town  # noqa: F401 - pytest fixtures
