"""The inference worker (`python -m inference_service worker`): pulls shards of runs from the work
queue (loop.py), runs their records through the models' engines (engines.py, shard.py) and
publishes live progress (progress.py). The engine port and the vLLM engine are adapters."""
