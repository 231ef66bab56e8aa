"""What every workbench process shares: settings, the read-model database, the gRPC server and
client channels, metrics, and one lifecycle (host.py). No domain logic."""
