"""The workbench's command line (`workbench`): a client of the gateway's HTTP and WebSocket API."""
