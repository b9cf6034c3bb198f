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


class TooLarge(GatewayError):
    """The upload is larger than the gateway's limit (max_submission_bytes)."""

    status = 413
    code = "too_large"


class MalformedSubmission(GatewayError):
    """An agent's upload cannot be read as a submission envelope."""

    status = 400
    code = "malformed_submission"


class ContentMismatch(GatewayError):
    """The records do not match the manifest's content hash or record count."""

    status = 400
    code = "content_mismatch"


class BadSignature(GatewayError):
    """The signature does not verify under the sender's registered key."""

    status = 401
    code = "bad_signature"


class AgentRevoked(GatewayError):
    """The agent was revoked; nothing it sends is accepted."""

    status = 403
    code = "agent_revoked"


class SourceNotRegistered(GatewayError):
    """The agent is not registered for the network and source it sends."""

    status = 403
    code = "source_not_registered"


class SourceOwnedByOther(GatewayError):
    """The source belongs to another agent (an administrator hands it over)."""

    status = 403
    code = "source_owned_by_other"


class SourceNotAllowed(GatewayError):
    """The policy does not accept the source from that network."""

    status = 403
    code = "source_not_allowed"


class UnknownSchema(GatewayError):
    """The encoding schema version is not one the gateway knows."""

    status = 422
    code = "unknown_schema"


class NotConfigured(GatewayError):
    """The gateway lacks a setting it needs to accept the upload."""

    status = 503
    code = "not_configured"


class WrongLinkageKey(GatewayError):
    """The encodings are under another linkage key than the gateway's current one."""

    status = 422
    code = "wrong_linkage_key"


class ForbiddenAttribute(GatewayError):
    """An attribute the policy does not allow from that network and source."""

    status = 403
    code = "forbidden_attribute"


class Replay(GatewayError):
    """A sequence number (or nonce) already used: a resend or a replay."""

    status = 409
    code = "replay"


class PartsMissing(GatewayError):
    """A part of a split snapshot arrived before the parts it follows."""

    status = 409
    code = "parts_missing"


class Fork(GatewayError):
    """The submission does not follow the agent's last accepted one (two copies of one agent)."""

    status = 409
    code = "fork"


class Unchained(GatewayError):
    """A submission without chain fields from an agent whose submissions are chained."""

    status = 409
    code = "unchained"


class WrongMunicipality(GatewayError):
    """The upload is another municipality's."""

    status = 403
    code = "wrong_municipality"


class KeyIdMismatch(GatewayError):
    """Encodings or a message under another federation key id."""

    status = 422
    code = "key_id_mismatch"


class BadRecord(GatewayError):
    """A federation record whose encoding does not fit its schema."""

    status = 422
    code = "bad_record"


class MalformedMessage(GatewayError):
    """A federation message that cannot be read."""

    status = 400
    code = "malformed_message"


class WrongKind(GatewayError):
    """A federation message of another kind than the route takes."""

    status = 400
    code = "wrong_kind"


class UnknownPeer(GatewayError):
    """A federation message from a municipality that is not a configured peer."""

    status = 403
    code = "unknown_peer"


class WrongRecipient(GatewayError):
    """A federation message addressed to another municipality."""

    status = 403
    code = "wrong_recipient"


class PurposeRefused(GatewayError):
    """A federation message for a purpose this federation does not serve (or not today)."""

    status = 403
    code = "purpose_refused"


class NotYetValid(GatewayError):
    """A federation message issued in the future (clock skew)."""

    status = 401
    code = "not_yet_valid"


class Expired(GatewayError):
    """A federation message past its validity."""

    status = 401
    code = "expired"


class ValidityTooLong(GatewayError):
    """A federation message valid for longer than the bundle window."""

    status = 401
    code = "validity_too_long"


class MalformedFederationSubmission(GatewayError):
    """A federation submission that cannot be read (its code since before the envelope)."""

    status = 400
    code = "malformed"


class FederationAgentRevoked(GatewayError):
    """A revoked agent's federation submission (its code since before the envelope)."""

    status = 403
    code = "revoked"
