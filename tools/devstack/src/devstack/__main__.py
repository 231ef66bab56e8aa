"""`python -m devstack run`: the whole workbench on 127.0.0.1 until Ctrl-C (what `make run` calls).

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

from devstack.natsserver import PortInUse
from devstack.settings import REPO, DevstackSettings
from devstack.stack import PROCESSES, Stack, StackPorts
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


def run() -> int:
    try:
        settings = DevstackSettings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    var = settings.var_dir.resolve()
    models_file = settings.models_file.resolve()
    if models_file == DEMO_MODELS_FILE.resolve():
        build_demo_models(REPO / "var")
    stack = Stack(
        REPO,
        var,
        StackPorts.from_settings(settings),
        token=api_token(var, settings.api_token),
        models_file=models_file,
        services_nice=settings.services_nice,
    )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        print("starting nats-server, the services, the worker and the gateway ...", flush=True)
        stack.start()
    except (PortInUse, RuntimeError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        stack.stop()
        return 1
    try:
        link = stack.login_link()
    except Exception as error:  # the gateway answered health but not this: say so, keep running
        link = f"{stack.url} (no login link: {error}; sign in with the token in {var / 'api-token'})"
    print(
        f"\nThe workbench is running. Open this one-time login link (valid "
        f"{os.environ.get('WB_LOGIN_LINK_MINUTES', '15')} minutes; `workbench users link admin` makes another):\n"
        f"  {link}\n"
        f"API clients and the CLI use the admin token in {var / 'api-token'} (WB_API_TOKEN).\n"
        f"(logs in {var / 'logs'}; Ctrl-C stops everything)\n",
        flush=True,
    )
    try:
        while not stopping:
            for name in PROCESSES:
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
    parser.parse_args()
    return run()


if __name__ == "__main__":
    sys.exit(main())
