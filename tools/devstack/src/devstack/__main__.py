"""`python -m devstack run`: the whole workbench on 127.0.0.1 until Ctrl-C (what `make run` calls).

`python -m devstack run --cluster` (`make run-cluster`): the same on a JetStream cluster of three
nats-servers (streams with 3 replicas) with two inference workers for every model.

Settings: devstack/settings.py (WB_VAR_DIR, WB_API_TOKEN, WB_MODELS_FILE, the ports); every other
WB_* variable reaches the services as the user set it.
"""

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.cluster import ClusterPorts, NatsCluster
from devstack.natsserver import PortInUse, port_is_free
from devstack.settings import REPO, DevstackSettings
from devstack.stack import Stack, StackPorts
from servicehost.settings import SettingsError

DEMO_MODELS_FILE = REPO / "config" / "models.toml"


def api_token(var: Path, configured: str) -> str:
    if configured:
        return configured
    path = var / "api-token"
    if not path.exists():
        var.mkdir(parents=True, exist_ok=True)
        # Created owner-only from the start: a chmod after the write would leave a window.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def build_demo_models(var: Path) -> None:
    """The default models file names two tiny models under var/models; build them once, offline."""
    out = var / "models"
    if all((out / name / "config.json").exists() for name in ("tiny-a", "tiny-b")):
        return
    print(f"building the two tiny demo models in {out} (first run only) ...", flush=True)
    subprocess.run([sys.executable, "-m", "devstack.demo_models", str(out)], check=True)


def loopback_cluster(var: Path, settings: DevstackSettings) -> NatsCluster:
    """Three servers on WB_NATS_PORT and the two ports after it (routes 10 above, monitoring 20 above)."""
    ports = ClusterPorts.from_base(settings.nats_port)
    for port in (*ports.client, *ports.routes, *ports.monitor):
        if not port_is_free(port):
            raise PortInUse(f"nats-server: port {port} on 127.0.0.1 is already in use; set WB_NATS_PORT elsewhere")
    return NatsCluster(var / "nats-cluster", ports, sync=settings.nats_sync)


def run(cluster: bool = False) -> int:
    try:
        settings = DevstackSettings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    var = settings.var_dir.resolve()
    models_file = settings.models_file.resolve()
    if models_file == DEMO_MODELS_FILE.resolve():
        build_demo_models(REPO / "var")
    try:
        nats_cluster = loopback_cluster(var, settings) if cluster else None
    except PortInUse as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    stack = Stack(
        REPO,
        var,
        StackPorts.from_settings(settings),
        token=api_token(var, settings.api_token),
        models_file=models_file,
        services_nice=settings.services_nice,
        nats_sync=settings.nats_sync,
        cluster=nats_cluster,
        extra_workers={"worker-2": {}} if cluster else {},
    )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        what = (
            "a cluster of 3 nats-servers, the services, 2 workers"
            if cluster
            else "nats-server, the services, the worker"
        )
        print(f"starting {what} and the gateway ...", flush=True)
        stack.start()
    except (PortInUse, RuntimeError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        stack.stop()
        return 1
    token_source = "WB_API_TOKEN" if settings.api_token else f"the file {var / 'api-token'}"
    try:
        link = stack.login_link()
    except Exception as error:  # the gateway answered health but not this: say so, keep running
        link = f"{stack.url} (no login link: {error}; sign in with the token in {token_source})"
    print(
        "\nThe workbench is running. Open this one-time login link (one use, within WB_LOGIN_LINK_MINUTES,"
        " 15 by default; `workbench users link admin` makes another):\n"
        f"  {link}\n"
        f"API clients and the CLI use the admin token in {token_source}.\n"
        f"(logs in {var / 'logs'}; Ctrl-C stops everything)\n",
        flush=True,
    )
    try:
        while not stopping:
            for name in stack.process_names:
                if not stack.running(name):
                    print(f"error: {name} stopped unexpectedly; see {var / 'logs' / (name + '.log')}", file=sys.stderr)
                    stopping = True
            time.sleep(0.2)
    finally:
        print("stopping ...", flush=True)
        stack.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--cluster", action="store_true", help="three nats-servers in one cluster, two workers")
    args = parser.parse_args()
    return run(cluster=args.cluster)


if __name__ == "__main__":
    sys.exit(main())
