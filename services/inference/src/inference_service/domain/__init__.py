"""The inference domain: models, runs and their results; pure code, no I/O."""
