"""The escrow's own web UI (mounted at ``/ui``): approvers' queue, custodians' unseal page, caseworkers' filing and receipt."""
