"""Adapters: the read model's tables and queries, and the datasets service's gRPC client."""
