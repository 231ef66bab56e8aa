"""The HTTP + WebSocket gateway."""
