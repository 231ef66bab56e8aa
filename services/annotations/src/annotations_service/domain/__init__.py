"""The annotations domain: commands, the record's annotation state, decide/evolve, errors (no I/O)."""
