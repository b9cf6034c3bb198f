"""One module per group of screens: auth (sign in/out), requests (queue, filing, decisions, receipt), vault (unseal), audit."""
