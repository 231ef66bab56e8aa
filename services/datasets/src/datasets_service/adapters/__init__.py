"""Adapters of the datasets service: read model, object store, page cache, upload spool, file readers."""
