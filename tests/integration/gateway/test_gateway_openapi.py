"""Every operation of the gateway's JSON API declares what it answers: a response schema in the OpenAPI document.

The app is the real one (``gateway.api.main.create_app``) on a gateway
opened in this process; its OpenAPI document is walked, not a list of routes.
The walk itself is ``tests/support/openapi.py``, shared with the escrow's test.
"""

from __future__ import annotations

from typing import Any

from gateway.api.main import create_app
from tests.support.openapi import undeclared


def test_every_operation_has_a_response_schema(gw: Any) -> None:
    spec = create_app(gw, jobs=False).openapi()
    operations = [(m, p) for p, item in spec["paths"].items() for m in item]
    assert len(operations) >= 30
    assert undeclared(spec) == [], "\n".join(undeclared(spec))
