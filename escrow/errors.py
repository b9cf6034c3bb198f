"""The escrow's refusals: one class per refusal, each with its HTTP status, its stable code and a Japanese message.

Raise the named class with the message (``raise Sealed(SEALED_DETAIL)``);
the status and the code are declared once, here. The message is safe to show
and to log: never a secret, never an identity. ``escrow/api/app.py`` and
``escrow/web/app.py`` turn every :class:`~service.errors.Refusal` into the
HTTP answer (and the audit entry) in one place.
"""

from __future__ import annotations

from service.errors import Refusal


class EscrowError(Refusal):
    """A request or command the escrow refuses; ``detail`` never holds a secret or an identity."""


SEALED_DETAIL = "エスクローは封印されています（鍵管理者による開封が必要です）"


# ---- Sign-in, sessions and roles ---------------------------------------------------------------------


class NotAuthenticated(EscrowError):
    """No valid session token came with the request."""

    status = 401
    code = "not_authenticated"


class ForbiddenRole(EscrowError):
    """The user's role may not do this."""

    status = 403
    code = "forbidden_role"


class PasswordChangeRequired(EscrowError):
    """The user must change the initial password before anything else."""

    status = 403
    code = "password_change_required"


class UnknownRole(EscrowError):
    """A role name that is not one of the escrow's roles."""

    status = 422
    code = "unknown_role"


# ---- Release requests and their filings --------------------------------------------------------------


class InvalidRequest(EscrowError):
    """A request body that does not validate."""

    status = 422
    code = "invalid_request"


class NotRequester(EscrowError):
    """Only the user who filed the request may do this."""

    status = 403
    code = "not_requester"


class NotInGatewayLog(EscrowError):
    """The filing cannot be found in the gateway's audit log."""

    status = 403
    code = "not_in_gateway_log"


class FilingNotSigned(EscrowError):
    """The filing's envelope is not signed by the gateway's key (another key, or edited after signing)."""

    status = 403
    code = "filing_signature_invalid"


class FilingVersion(EscrowError):
    """The filing is in an envelope version this escrow does not read (an old or newer gateway)."""

    status = 400
    code = "unknown_version"


class FilingMalformed(EscrowError):
    """The body is not a re-identification filing envelope."""

    status = 422
    code = "filing_malformed"


# ---- Set-up and configuration (an operator's fault, answered 500, except set-up itself) --------------


class AlreadyInitialised(EscrowError):
    """The escrow has been set up already."""

    status = 409
    code = "already_initialised"


class SetupRefused(EscrowError):
    """Set-up parameters the escrow refuses."""

    status = 422
    code = "setup_refused"


class NotInitialised(EscrowError):
    """The escrow has not been set up."""

    status = 500
    code = "not_initialised"


class AuditKeyInvalid(EscrowError):
    """The audit log's signing key cannot be read."""

    status = 500
    code = "audit_key_invalid"


class GatewayVerifierInvalid(EscrowError):
    """The gateway's verification key cannot be read."""

    status = 500
    code = "gateway_verifier_invalid"


class GatewayVerifierMissing(EscrowError):
    """The gateway's verification key is missing."""

    status = 500
    code = "gateway_verifier_missing"


class SealedKeyInvalid(EscrowError):
    """The sealed private key cannot be read."""

    status = 500
    code = "sealed_key_invalid"


class SettingsInvalid(EscrowError):
    """The escrow's settings are invalid."""

    status = 500
    code = "settings_invalid"


class WitnessInvalid(EscrowError):
    """The witness configuration cannot be read."""

    status = 500
    code = "witness_invalid"


# ---- The vault: sealing, shares, unsealing -----------------------------------------------------------


class ShareRefused(EscrowError):
    """A custodian's share that cannot be used."""

    status = 400
    code = "share_refused"


class ShareNotYours(EscrowError):
    """The share belongs to another custodian."""

    status = 403
    code = "share_not_yours"


class AlreadyUnsealed(EscrowError):
    """The escrow is unsealed already."""

    status = 409
    code = "already_unsealed"


class CustodianAlreadyOffered(EscrowError):
    """This custodian has offered a share already."""

    status = 409
    code = "custodian_already_offered"


class DuplicateShare(EscrowError):
    """The same share was offered twice."""

    status = 409
    code = "duplicate_share"


class UnsealFailed(EscrowError):
    """The shares offered did not open the sealed key."""

    status = 409
    code = "unseal_failed"


class Sealed(EscrowError):
    """The escrow is sealed: custodians must open it first."""

    status = 503
    code = "sealed"


# ---- Refusals decided elsewhere, logged as the escrow's -----------------------------------------------


class BodyRefused(EscrowError):
    """A request body the front door refused before any route saw it (too large, too deep, malformed).

    The status and the code are the front door's (``service.frontdoor.limits``).
    """

    def __init__(self, status: int, code: str, detail: str) -> None:
        """The front door's answer: ``status``, ``code`` and the Japanese ``detail``."""
        super().__init__(detail)
        self.status, self.code = status, code  # type: ignore[misc]


class PageRefused(EscrowError):
    """A web page the user may not see or a form without its CSRF token (``code``: ``forbidden`` or ``csrf``)."""

    status = 403

    def __init__(self, reason: str, code: str) -> None:
        """``reason`` in Japanese, ``code`` as the web session decided it."""
        super().__init__(reason)
        self.code = code  # type: ignore[misc]


# ---- Re-identification requests and releases (escrow/reidentification.py) ----------------------------------------


class RequestExists(EscrowError):
    """A re-identification request or release refused (``request_exists``; raised in ``escrow/reidentification.py``)."""

    status = 409
    code = "request_exists"


class OwnRequest(EscrowError):
    """A re-identification request or release refused (``own_request``; raised in ``escrow/reidentification.py``)."""

    status = 403
    code = "own_request"


class AlreadyDecided(EscrowError):
    """A re-identification request or release refused (``already_decided``; raised in ``escrow/reidentification.py``)."""

    status = 409
    code = "already_decided"


class AlreadyReleased(EscrowError):
    """A re-identification request or release refused (``already_released``; raised in ``escrow/reidentification.py``)."""

    status = 410
    code = "already_released"


class NotApproved(EscrowError):
    """A re-identification request or release refused (``not_approved``; raised in ``escrow/reidentification.py``)."""

    status = 409
    code = "not_approved"


class OpenFailed(EscrowError):
    """A re-identification request or release refused (``open_failed``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "open_failed"


class UnknownPurpose(EscrowError):
    """A re-identification request or release refused (``unknown_purpose``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "unknown_purpose"


class PurposeNotUsable(EscrowError):
    """A re-identification request or release refused (``purpose_not_usable``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "purpose_not_usable"


class PolicyMismatch(EscrowError):
    """A re-identification request or release refused (``policy_mismatch``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "policy_mismatch"


class CaseRefInvalid(EscrowError):
    """A re-identification request or release refused (``case_ref_invalid``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "case_ref_invalid"


class RequesterMismatch(EscrowError):
    """A re-identification request or release refused (``requester_mismatch``; raised in ``escrow/reidentification.py``)."""

    status = 403
    code = "requester_mismatch"


class ApprovalsRequired(EscrowError):
    """A re-identification request or release refused (``approvals_required``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "approvals_required"


class MaxRecords(EscrowError):
    """A re-identification request or release refused (``max_records``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "max_records"


class NoRecords(EscrowError):
    """A re-identification request or release refused (``no_records``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "no_records"


class TooManyRecords(EscrowError):
    """A re-identification request or release refused (``too_many_records``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "too_many_records"


class InvalidRecord(EscrowError):
    """A re-identification request or release refused (``invalid_record``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "invalid_record"


class WrongEscrowKey(EscrowError):
    """A re-identification request or release refused (``wrong_escrow_key``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "wrong_escrow_key"


class DuplicateRecord(EscrowError):
    """A re-identification request or release refused (``duplicate_record``; raised in ``escrow/reidentification.py``)."""

    status = 422
    code = "duplicate_record"


class GatewayRefused(EscrowError):
    """A re-identification request or release refused (``gateway_refused``; raised in ``escrow/reidentification.py``)."""

    status = 403
    code = "gateway_refused"


class GatewayEntryUnbound(EscrowError):
    """A re-identification request or release refused (``gateway_entry_unbound``; raised in ``escrow/reidentification.py``)."""

    status = 403
    code = "gateway_entry_unbound"


class BindingMismatch(EscrowError):
    """A re-identification request or release refused (``binding_mismatch``; raised in ``escrow/reidentification.py``)."""

    status = 403
    code = "binding_mismatch"


class Rejected(EscrowError):
    """A re-identification request or release refused (``rejected``; raised in ``escrow/reidentification.py``)."""

    status = 409
    code = "rejected"


class ReleaseExpired(EscrowError):
    """A re-identification request or release refused (``release_expired``; raised in ``escrow/reidentification.py``)."""

    status = 410
    code = "release_expired"


class RequestNotFound(EscrowError):
    """A re-identification request or release refused (``request_not_found``; raised in ``escrow/reidentification.py``)."""

    status = 404
    code = "request_not_found"



# ---- Web forms: what a page refuses before it calls the escrow (the form is shown again with the message) -----------


class RejectionReasonRequired(EscrowError):
    """A rejection without its reason (the requester and the auditor read it)."""

    status = 422
    code = "reason_required"


class ShareFileMissing(EscrowError):
    """An unseal form without a share file, or one over its size limit."""

    status = 422
    code = "share_file_missing"


class PassphraseMissing(EscrowError):
    """An unseal form without the share's passphrase."""

    status = 422
    code = "passphrase_missing"
