"""The inference domain: models, runs and their results; pure code, no I/O (standard library,
contracts, eventlog's event values and servicehost's error kinds only)."""
