"""Property-based fuzzing of both OpenAPI documents (schemathesis) against the real gateway and escrow on loopback.

The same harness as ``python -m bench.fuzz`` (which runs ≥ 10,000 requests
per service), with a budget small enough for the suite on a busy machine:
valid and invalid requests for every operation, unauthenticated and with each
role's session. Every answer must be below 500.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from bench.fuzz import Deployment, deploy, fuzz

#: requests per service in the suite (the benchmark sends 10,000)
BUDGET = 600


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A gateway and an escrow set up in a temporary folder and served on loopback."""
    d = deploy(tmp_path_factory.mktemp("fuzz"))
    yield d
    d.stop()


@pytest.mark.parametrize("service", ["gateway", "escrow"])
def test_no_server_error_over_generated_requests(deployment: Deployment, service: str) -> None:
    url, headers = (deployment.gateway_url, deployment.gateway_headers) if service == "gateway" else \
        (deployment.escrow_url, deployment.escrow_headers)
    report = fuzz(service, url, headers, BUDGET, seed=20261201)
    print(report.line(), dict(sorted(report.statuses.items())))
    assert report.operations >= (30 if service == "gateway" else 15)
    assert report.requests >= BUDGET // 2  # the budget was really spent, not skipped
    assert set(report.statuses) - {200, 201, 204}, "only successes: the fuzzer reached no refusal path"
    assert report.server_errors == 0, "\n".join(report.examples)
    assert not [e for e in report.examples if "generation stopped" in e], report.examples
