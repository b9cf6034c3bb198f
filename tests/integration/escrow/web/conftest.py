"""Fixtures of the web UI tests (defined in web_support)."""

from tests.web.web_support import browser, context, site, town  # noqa: F401 - pytest fixtures
