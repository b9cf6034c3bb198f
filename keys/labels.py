"""Every key-derivation label and domain-separation tag tsunagu uses, in one module, so that no two uses share one.

A label is the constant part of an HKDF ``info``, of an HPKE ``info``, or
the prefix a hash or MAC is domain-separated with. Two uses that spelt the
same label would derive the same key (or hash into the same domain) from the
same secret; keeping them here, each once, makes that visible, and
``tests/unit/keys/test_labels.py`` checks that every label is unique and that no
module outside this one spells one.

The byte values are part of the formats: a key, token, key id or sealed
record made under a label is found again only under the same bytes. Never
change one; a new derivation gets a new label with its own version.
"""

from __future__ import annotations

# ---- keys ------------------------------------------------------------------------------------------------------------

#: Key ids (``keys._ids.fingerprint``): SHA-256 over this, the id's prefix, 0x00 and the material.
KEY_ID = b"tsunagu/key-id/v1\x00"
#: HKDF info of the key that wraps the linkage secret for one agent (``keys.enrolment``).
ENROL_WRAP = b"tsunagu/enrol/v1"
#: The ``v`` of the HPKE info that wraps the federation secret for one member or agent (``keys.federation``).
FEDERATION_WRAP = "tsunagu/federation-wrap/v1"
#: HKDF info of the escrow key's KEK from the custodians' Shamir seed (``keys.custody``), followed by the key ids.
ESCROW_KEK = b"tsunagu/escrow-kek/v1\x00"
#: SHA-256 prefix of a custodian share's commitment (``keys.custody``).
SHARE_COMMITMENT = b"tsunagu/share-commitment/v1\x00"
#: HKDF info of a sealed batch's secret (``keys.seal``), followed by the batch header's canonical JSON.
SEAL_BATCH = b"tsunagu/seal/v1/batch\x00"
#: HKDF-Expand info of one sealed record's key (``keys.seal``), followed by the record token.
SEAL_RECORD = b"tsunagu/seal/v1/record\x00"
#: SHA-256 prefix of the records a re-identification request names (``keys.binding``).
REIDENTIFY_RECORDS = b"tsunagu/reidentify-records/v1\x00"
#: SHA-256 prefix of a re-identification request's justification (``keys.binding``).
REIDENTIFY_JUSTIFICATION = b"tsunagu/reidentify-justification/v1\x00"

# ---- the linkage secret ----------------------------------------------------------------------------------------------

#: HKDF info of a source's record-token key (``agents.core.token``), followed by the source's name.
RECORD_TOKEN = "tsunagu/record-token/v1|"
#: Purposes of ``linkage.encode.derive_key`` (HKDF info ``<schema version>|<purpose>``).
#: A segment's key, followed by the segment's key group.
LINKAGE_SEGMENT = "segment|"
#: The blocking key.
LINKAGE_BLOCKING = "blocking"
#: A diffused view's layer key (``tsunagu-jp/2``), followed by the view's name.
LINKAGE_DIFFUSION = "diffusion|"
#: A quadratic view's complement key (which inputs and outputs are complemented), followed by the view's name.
LINKAGE_DIFFUSION_NEGATION = "diffusion-negation|"

# ---- the services' web sessions ---------------------------------------------------------------------------------------

#: HMAC context of the gateway's CSRF tokens (``gateway.web.session``).
GATEWAY_CSRF = b"tsunagu-web-csrf/1"
#: HMAC context of the escrow's CSRF tokens (``escrow.web.session``).
ESCROW_CSRF = b"tsunagu-escrow-web-csrf/1"
