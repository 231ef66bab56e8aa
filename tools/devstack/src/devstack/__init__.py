"""Runs the whole workbench as local processes: `make run`, and the end-to-end tests."""

from devstack.stack import Stack, StackPorts

__all__ = ["Stack", "StackPorts"]
