"""The annotations domain: commands, a record's annotation state, pure decide/evolve, export lines, errors.

Standard library, the proto contracts and eventlog's event values only: no I/O.
"""
