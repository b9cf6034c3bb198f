"""Fixtures of the escrow tests (defined in tests.support.escrow)."""

from tests.support.escrow import ceremony, escrow_home, gateway_log, server  # noqa: F401 - pytest fixtures
