"""The datasets service."""
