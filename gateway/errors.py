"""The gateway's refusals: one class per refusal, each with its HTTP status, its stable code and a Japanese message.

Raise the named class with the message (``raise SourceOwned("…")``); the
status and the code are declared once, here, and clients and tests match on
the code. The message is safe to show and to log: never identity data, never
a secret. ``gateway/api/main.py`` and ``gateway/web/app.py`` turn every
:class:`~service.errors.Refusal` into the HTTP answer in one place.
"""

from __future__ import annotations

from service.errors import Refusal


class GatewayError(Refusal):
    """A request or command the gateway refuses; ``detail`` never contains identity data or secrets."""


# ---- Sign-in, sessions and roles ---------------------------------------------------------------------


class NotAuthenticated(GatewayError):
    """No valid session token came with the request."""

    status = 401
    code = "not_authenticated"


class Forbidden(GatewayError):
    """The policy does not let this user's role do this."""

    status = 403
    code = "forbidden"


class PasswordChangeRequired(GatewayError):
    """The user must change the initial password before anything else."""

    status = 403
    code = "password_change_required"


class UnknownRole(GatewayError):
    """A role name that is not one of the gateway's roles."""

    status = 422
    code = "unknown_role"


# ---- Configuration and keys at rest (an operator's fault, answered 500) ------------------------------


class AuditKeyInvalid(GatewayError):
    """The audit log's signing key cannot be read."""

    status = 500
    code = "audit_key_invalid"


class PolicyInvalid(GatewayError):
    """The access policy file cannot be read or is invalid."""

    status = 500
    code = "policy_invalid"


class CatalogInvalid(GatewayError):
    """The support catalogue cannot be read or is invalid."""

    status = 500
    code = "catalog_invalid"


class ScreeningInvalid(GatewayError):
    """The screening rules cannot be read or are invalid."""

    status = 500
    code = "screening_invalid"


class FederationConfigInvalid(GatewayError):
    """The federation configuration cannot be read or is invalid."""

    status = 500
    code = "federation_config_invalid"


class FederationKeyInvalid(GatewayError):
    """The federation signing key cannot be read."""

    status = 500
    code = "federation_key_invalid"


class ReturnKeyInvalid(GatewayError):
    """The return-path key cannot be read."""

    status = 500
    code = "return_key_invalid"


class NoFont(GatewayError):
    """No Japanese font is installed for drawing charts."""

    status = 500
    code = "no_font"


# ---- The API's front door: request bodies, signatures, sizes, drop folder ----------------------------


class MalformedRequest(GatewayError):
    """A request body that is not what the operation takes."""

    status = 400
    code = "malformed_request"


class MalformedSubmission(GatewayError):
    """A submission that cannot be read as one."""

    status = 400
    code = "malformed_submission"


class BadSignature(GatewayError):
    """A signature that does not verify under the sender's registered key."""

    status = 401
    code = "bad_signature"


class StaleRequest(GatewayError):
    """A signed request whose timestamp is too far from now (a replay, or a wrong clock)."""

    status = 401
    code = "stale_request"


class RevokedAgentRequest(GatewayError):
    """A request signed by an agent that has been revoked."""

    status = 403
    code = "agent_revoked"


class TooLarge(GatewayError):
    """A body or file over its size limit."""

    status = 413
    code = "too_large"


class UnsupportedMediaType(GatewayError):
    """A submission not sent as the submission media type."""

    status = 415
    code = "unsupported_media_type"


class NotARegularFile(GatewayError):
    """A drop-folder entry that is not a regular file."""

    status = 422
    code = "not_a_regular_file"


class UnreadableFile(GatewayError):
    """A drop-folder file that cannot be read."""

    status = 422
    code = "unreadable_file"


# ---- Agents and the sources they own -----------------------------------------------------------------


class UnknownAgent(GatewayError):
    """An agent id the gateway has not registered."""

    status = 401
    code = "unknown_agent"


class AgentKeyDiffers(GatewayError):
    """The agent is registered with another key."""

    status = 409
    code = "agent_key_differs"


class AgentRevoked(GatewayError):
    """The agent is revoked; it can neither be re-registered, handed sources nor revoked again."""

    status = 409
    code = "agent_revoked"


class AlreadyOwner(GatewayError):
    """The agent already owns the source."""

    status = 409
    code = "already_owner"


class SourceOwned(GatewayError):
    """Another agent owns the source."""

    status = 409
    code = "source_owned"


class AgentMismatch(GatewayError):
    """The public key file belongs to another agent than the one named."""

    status = 422
    code = "agent_mismatch"


class NoReason(GatewayError):
    """A handover of sources without the reason it must record."""

    status = 422
    code = "no_reason"


class NoSources(GatewayError):
    """An agent registered without any source to submit."""

    status = 422
    code = "no_sources"


class SourceNotOnNetwork(GatewayError):
    """The source is not on the agent's network."""

    status = 422
    code = "source_not_on_network"


# ---- Linkage runs and review -------------------------------------------------------------------------


class NoRun(GatewayError):
    """No linkage run has finished yet."""

    status = 404
    code = "no_run"


class RunInProgress(GatewayError):
    """A linkage run is already in progress."""

    status = 409
    code = "run_in_progress"


class RecordNotFound(GatewayError):
    """No such record in the current run."""

    status = 404
    code = "record_not_found"


class PersonNotFound(GatewayError):
    """No such person in the current run."""

    status = 404
    code = "person_not_found"


class PersonMerged(GatewayError):
    """The person was merged into another one."""

    status = 404
    code = "person_merged"


class ReviewPairNotFound(GatewayError):
    """No such pair in the review queue."""

    status = 404
    code = "review_pair_not_found"


class InvalidDecision(GatewayError):
    """A review decision that is not one of the decisions."""

    status = 422
    code = "invalid_decision"


class ReasonRequired(GatewayError):
    """A review decision without its reason, or a not-needed assessment without its reason code."""

    status = 422
    code = "reason_required"


class ReasonTooLong(GatewayError):
    """A reason over its length limit."""

    status = 422
    code = "reason_too_long"


class SameSource(GatewayError):
    """Two records of the same source cannot be decided as one person."""

    status = 422
    code = "same_source"


# ---- Support cases and charts ------------------------------------------------------------------------


class CaseNotFound(GatewayError):
    """No such support case."""

    status = 404
    code = "case_not_found"


class CaseChanged(GatewayError):
    """The case changed since the form was opened (someone else saved first)."""

    status = 409
    code = "case_changed"


class InvalidAssignee(GatewayError):
    """An assignee who is not a user who may hold cases."""

    status = 422
    code = "invalid_assignee"


class InvalidDate(GatewayError):
    """A date that is not YYYY-MM-DD."""

    status = 422
    code = "invalid_date"


class NoteRefused(GatewayError):
    """A case note the identity check refuses (it looks like identity data)."""

    status = 422
    code = "note_refused"


class ReasonWithoutNotNeeded(GatewayError):
    """A not-needed reason on a case that is not marked not needed."""

    status = 422
    code = "reason_without_not_needed"


class UnknownAssessment(GatewayError):
    """An assessment that is not one of the assessments."""

    status = 422
    code = "unknown_assessment"


class UnknownStatus(GatewayError):
    """A case status that is not one of the statuses."""

    status = 422
    code = "unknown_status"


class ChartNotFound(GatewayError):
    """No such chart."""

    status = 404
    code = "chart_not_found"


class InvalidPerson(GatewayError):
    """A person id that is not P and 16 letters or digits."""

    status = 422
    code = "invalid_person"


class UnknownDifficulties(GatewayError):
    """A difficulty code that is not in the vocabulary."""

    status = 422
    code = "unknown_difficulties"


class UnknownSupports(GatewayError):
    """A support code that is not in the vocabulary."""

    status = 422
    code = "unknown_supports"


class UnknownDepartment(GatewayError):
    """A department code that is not in the vocabulary."""

    status = 422
    code = "unknown_department"


class UnknownNotNeededReason(GatewayError):
    """A not-needed reason code that is not in the vocabulary."""

    status = 422
    code = "unknown_not_needed_reason"


# ---- The return path to departments ------------------------------------------------------------------


class PurposeRefused(GatewayError):
    """The policy does not let this list go back to the department."""

    status = 403
    code = "purpose_refused"


class ReturnListNotFound(GatewayError):
    """No such return list."""

    status = 404
    code = "return_list_not_found"


class NoCases(GatewayError):
    """A return list without any case."""

    status = 422
    code = "no_cases"


class NoRecords(GatewayError):
    """The cases have no records of the department."""

    status = 422
    code = "no_records"


class TooMany(GatewayError):
    """More cases than one return list may hold."""

    status = 422
    code = "too_many"


class UnknownAction(GatewayError):
    """A requested action that is not in the policy."""

    status = 422
    code = "unknown_action"


class UnknownSource(GatewayError):
    """A source (department) that is not in the policy."""

    status = 422
    code = "unknown_source"


# ---- Federation between municipalities ---------------------------------------------------------------


class MalformedMessage(GatewayError):
    """A federation message that cannot be read as one."""

    status = 400
    code = "malformed_message"


class AttributeNotShareable(GatewayError):
    """The federation configuration does not let this attribute be shared."""

    status = 403
    code = "attribute_not_shareable"


class NoTransferRecord(GatewayError):
    """A query about children who have no record of moving in from that peer."""

    status = 403
    code = "no_transfer_record"


class UnknownPeer(GatewayError):
    """A municipality that is not configured as a peer."""

    status = 403
    code = "unknown_peer"


class NothingToAsk(GatewayError):
    """No child has a record of moving in from the peer: nothing to ask about."""

    status = 404
    code = "nothing_to_ask"


class UnknownExchange(GatewayError):
    """No such query exchange, or no answer to it."""

    status = 404
    code = "unknown_exchange"


class UnexpectedAnswer(GatewayError):
    """An answer to no open query (or one already answered)."""

    status = 409
    code = "unknown_exchange"


class UnknownHandle(GatewayError):
    """No query result under this handle, or a handle this municipality did not issue."""

    status = 404
    code = "unknown_handle"


class HandleExpired(GatewayError):
    """The handle of a query result has expired."""

    status = 410
    code = "handle_expired"


class UnknownHandover(GatewayError):
    """No such handover request."""

    status = 404
    code = "unknown_handover"


class UnexpectedHandoverAnswer(GatewayError):
    """A handover answer to no open request (or one already answered)."""

    status = 409
    code = "unknown_handover"


class AlreadyAnswered(GatewayError):
    """The handover request has been answered."""

    status = 409
    code = "already_answered"


class PeerInsecure(GatewayError):
    """The peer's address is not https."""

    status = 409
    code = "peer_insecure"


class PeerNoUrl(GatewayError):
    """The peer has no address to deliver to."""

    status = 409
    code = "peer_no_url"


class InvalidText(GatewayError):
    """A free-text field (a question, an answer) that is empty or too long."""

    status = 422
    code = "invalid_text"


class KeyIdMismatch(GatewayError):
    """Encodings under another key id than the configured one."""

    status = 422
    code = "key_id_mismatch"


class RateLimited(GatewayError):
    """The peer sent more than its rate allows."""

    status = 429
    code = "rate_limited"


class PeerRefused(GatewayError):
    """The peer refused the message."""

    status = 502
    code = "peer_refused"


class PeerUnreachable(GatewayError):
    """The peer could not be reached."""

    status = 502
    code = "peer_unreachable"


class FederationNotConfigured(GatewayError):
    """This gateway is in no federation."""

    status = 404
    code = "federation_not_configured"


# ---- Evaluation and audit reports --------------------------------------------------------------------


class UnknownEvaluationPeer(GatewayError):
    """Pooled evaluation counts from or for a municipality that is not a peer."""

    status = 404
    code = "unknown_peer"


class MalformedCounts(GatewayError):
    """Pooled evaluation counts that cannot be read."""

    status = 422
    code = "malformed_counts"


class IndexUnavailable(GatewayError):
    """Too few past decisions to apply the risk index yet."""

    status = 409
    code = "index_unavailable"


class ExportInvalid(GatewayError):
    """An escrow export the audit report cannot verify."""

    status = 422
    code = "export_invalid"


# Envelope and ingest


class UnknownEnvelopeVersion(GatewayError):
    """A message in an old or unknown envelope version (``keys.envelope``): the sender must upgrade and send again."""

    status = 400
    code = "unknown_version"


class ContentMismatch(GatewayError):
    """The records do not match the manifest's content hash or record count."""

    status = 400
    code = "content_mismatch"


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


class BadRecord(GatewayError):
    """A federation record whose encoding does not fit its schema."""

    status = 422
    code = "bad_record"


class WrongKind(GatewayError):
    """A federation message of another kind than the route takes."""

    status = 400
    code = "wrong_kind"


class WrongRecipient(GatewayError):
    """A federation message addressed to another municipality."""

    status = 403
    code = "wrong_recipient"


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


# ---- Re-identification requests and releases (gateway/reidentify.py) ----------------------------------------


class TooManyRecords(GatewayError):
    """A re-identification request or release refused (``too_many_records``; raised in ``gateway/reidentify.py``)."""

    status = 422
    code = "too_many_records"


class PurposeInvalid(GatewayError):
    """A re-identification request or release refused (``purpose_invalid``; raised in ``gateway/reidentify.py``)."""

    status = 422
    code = "purpose_invalid"


class CaseRefRequired(GatewayError):
    """A re-identification request or release refused (``case_ref_required``; raised in ``gateway/reidentify.py``)."""

    status = 422
    code = "case_ref_required"


class CaseRefInvalid(GatewayError):
    """A re-identification request or release refused (``case_ref_invalid``; raised in ``gateway/reidentify.py``)."""

    status = 422
    code = "case_ref_invalid"


class JustificationRequired(GatewayError):
    """A re-identification request or release refused (``justification_required``; raised in ``gateway/reidentify.py``)."""

    status = 422
    code = "justification_required"


class JustificationTooLong(GatewayError):
    """A re-identification request or release refused (``justification_too_long``; raised in ``gateway/reidentify.py``)."""

    status = 422
    code = "justification_too_long"


class JustificationInvalid(GatewayError):
    """A re-identification request or release refused (``justification_invalid``; raised in ``gateway/reidentify.py``)."""

    status = 422
    code = "justification_invalid"


class PurposeNotUsable(GatewayError):
    """A re-identification request or release refused (``purpose_not_usable``; raised in ``gateway/reidentify.py``)."""

    status = 422
    code = "purpose_not_usable"



# ---- Web forms: what a page refuses before it calls the gateway (the form is shown again with the message) ----------


class DeleteNotConfirmed(GatewayError):
    """A user deletion whose confirmation field does not repeat the user name."""

    status = 422
    code = "delete_not_confirmed"


class PasswordsDiffer(GatewayError):
    """A new password whose confirmation differs."""

    status = 422
    code = "passwords_differ"


class UploadUnreadable(GatewayError):
    """An uploaded text file over its size limit or not UTF-8."""

    status = 422
    code = "upload_unreadable"


class CheckpointMissing(GatewayError):
    """The audit check without a checkpoint to prove the log against."""

    status = 422
    code = "checkpoint_missing"


class CheckpointNotProven(GatewayError):
    """The log does not verify, or is not consistent with the checkpoint an auditor kept."""

    status = 422
    code = "checkpoint_not_proven"


class EscrowExportMissing(GatewayError):
    """The joined audit report without the escrow's export."""

    status = 422
    code = "escrow_export_missing"


class EscrowExportInvalid(GatewayError):
    """An escrow audit export that does not verify."""

    status = 422
    code = "escrow_export_invalid"


class SplitRecordsNotChosen(GatewayError):
    """A 「別人」 decision without two different records of the person chosen."""

    status = 422
    code = "split_records_not_chosen"


class HandoverIncomplete(GatewayError):
    """A handover request without its case number or message, or an answer without its message."""

    status = 422
    code = "handover_incomplete"


class PersonIdMissing(GatewayError):
    """A re-identification request form without a person id."""

    status = 422
    code = "person_id_missing"
