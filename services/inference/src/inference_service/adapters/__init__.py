"""Adapters: the event log, the work queue, the datasets service, the read model and the engines."""
