"""One module per resource: vault (status, unseal, seal), auth, requests, audit."""
