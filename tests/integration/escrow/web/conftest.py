"""Fixtures of the web UI tests (defined in tests.support.web)."""

from tests.support.web import context  # noqa: F401 - pytest fixtures
# from tests.support.web, in tests/integration/conftest.py (shared session fixtures): browser, site
