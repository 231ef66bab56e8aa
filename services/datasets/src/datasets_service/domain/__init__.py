"""The datasets domain: JSONL records, the dataset aggregate, and its errors (stdlib and proto messages only)."""
