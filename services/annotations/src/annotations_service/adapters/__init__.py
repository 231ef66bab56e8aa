"""Adapters: the read model (tables, projection, queries) and the datasets service's gRPC client."""
