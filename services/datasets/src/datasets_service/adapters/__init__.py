"""Adapters of the datasets service: read model, object store, parsed-file cache."""
