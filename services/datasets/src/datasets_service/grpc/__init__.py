"""The gRPC edge of the datasets service."""
