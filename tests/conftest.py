"""Shared pytest fixtures."""

from __future__ import annotations

# --- PostgreSQL (tests/support/postgres.py) ------------------------------------------
# A real, throwaway PostgreSQL for the whole session: started on first use on
# 127.0.0.1 with a generated password, stopped at session end. Missing server
# binaries fail the tests that ask for it (run `make postgres`); they never skip.
import itertools
from typing import Iterator

import pytest
from hypothesis import settings
from sqlalchemy.engine import URL

from tests.support import postgres as _postgres

_database_numbers = itertools.count()

# Property tests check behaviour, not speed: on a busy 2-core machine one example
# may take longer than Hypothesis's default 200 ms deadline, which is no failure.
settings.register_profile("tsunagu", deadline=None)
settings.load_profile("tsunagu")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[URL]:
    """A ``postgresql+psycopg`` URL (password masked in ``str()``) to an empty database on a session-wide cluster."""
    try:
        with _postgres.cluster() as url:
            yield url
        return
    except _postgres.PostgresUnavailable as exc:
        reason = str(exc)
    pytest.fail(reason, pytrace=False)  # outside the except block, so the reason is shown once


@pytest.fixture()
def fresh_postgres_url(postgres_url: URL) -> URL:
    """A URL to a database of its own for one test, on the session's cluster."""
    return _postgres.create_database(postgres_url, f"test_{next(_database_numbers)}")
# --- end PostgreSQL -----------------------------------------------------------


# --- session fixtures of several test packages, one instance for all (written by tools/split_tests.py) ---
from tests.support.escrow import ceremony, escrow_home, gateway_log  # noqa: E402,F401 - pytest fixtures
from tests.support.gateway import agents, home_templates, town  # noqa: E402,F401 - pytest fixtures
# --- end of the shared session fixtures ---
