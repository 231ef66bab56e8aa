"""The gRPC edge of the inference service."""
