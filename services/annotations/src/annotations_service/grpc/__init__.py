"""The gRPC edge: the servicer and the error mapping."""
