"""The annotations service."""
