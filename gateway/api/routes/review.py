"""``GET /review-pairs``: the older path of ``GET /review/pairs`` (``gateway.api.routes.decisions``), kept as an alias.

Both paths are answered by one route function, so they cannot drift; the
OpenAPI document marks this one deprecated (docs/gateway.md).
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.routes.decisions import ReviewPairs, get_pairs

router = APIRouter(tags=["review"])
# The operation id is named: generated from the function and the path, it would equal /review/pairs' own.
router.add_api_route("/review-pairs", get_pairs, methods=["GET"], response_model=ReviewPairs, deprecated=True,
                     operation_id="get_review_pairs_deprecated_alias", summary="Review pairs (deprecated alias of GET /review/pairs)")
