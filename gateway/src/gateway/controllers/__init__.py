"""HTTP and WebSocket handlers, one module per domain; each handler turns a request into gRPC calls."""
