"""Fixtures of the escrow tests (defined in tests.support.escrow)."""

from tests.support.escrow import server  # noqa: F401 - pytest fixtures
# from tests.support.escrow, in tests/conftest.py (shared session fixtures): ceremony, escrow_home, gateway_log
