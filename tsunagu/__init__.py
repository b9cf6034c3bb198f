"""The `tsunagu` command line: the shell around linkage/, keys/, policy/, agents/ and gateway/."""
