"""Fixtures shared by the test packages below this folder (tools/split_tests.py puts them here)."""


# --- session fixtures of several test packages, one instance for all (written by tools/split_tests.py) ---
from tests.support.web import browser, site  # noqa: E402,F401 - pytest fixtures
# --- end of the shared session fixtures ---
