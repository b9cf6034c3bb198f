"""The gateway: ingest → store → link → stable pseudonymous persons → casework API.

It holds record tokens, encodings (CLKs), presence flags, blocking tokens,
escrow-sealed identities and the attributes the policy allows — never the
linkage secret, the escrow private key or a plaintext identity.
"""
