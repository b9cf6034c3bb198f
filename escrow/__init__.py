"""The escrow service: holds the sealed escrow key, is unsealed by k custodians, and opens approved re-identifications.

A process of its own with its own store and users (trust boundaries 3 and 4
of the design): the gateway can file a re-identification request and the
escrow checks it against the gateway's signed audit log, but only approvers
who sign in to the escrow itself can approve it, and only the requesting
caseworker can have its records opened, once, after the opening is logged
in the escrow's own audit log.
"""
