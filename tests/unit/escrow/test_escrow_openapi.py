"""Every operation of the escrow's JSON API declares what it answers: a response schema in the OpenAPI document.

The app is the real one (``escrow.api.app.create_app``) on the escrow set up
by ``tsunagu escrow init`` (tests/support/escrow.py); the walk is
``tests/support/openapi.py``, shared with the gateway's test.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.openapi import undeclared
from escrow.api.app import create_app
from escrow.service import Escrow


def test_every_operation_has_a_response_schema(escrow_home: Path) -> None:
    escrow = Escrow.open(escrow_home)
    try:
        spec = create_app(escrow).openapi()
    finally:
        escrow.close()
    operations = [(m, p) for p, item in spec["paths"].items() for m in item]
    assert len(operations) >= 20
    assert undeclared(spec) == [], "\n".join(undeclared(spec))
