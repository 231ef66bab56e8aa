"""The gRPC edge of the annotations service."""
