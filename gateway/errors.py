"""The gateway's refusals: each carries an HTTP status, a stable code and a Japanese message safe to show and log."""

from __future__ import annotations

from service.errors import Refusal


class GatewayError(Refusal):
    """A request or command the gateway refuses; ``detail`` never contains identity data or secrets."""


# Envelope and ingest


class UnknownEnvelopeVersion(GatewayError):
    """A message in an old or unknown envelope version (``keys.envelope``): the sender must upgrade and send again."""

    status = 400
    code = "unknown_version"
