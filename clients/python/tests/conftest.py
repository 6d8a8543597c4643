"""Fixtures: a real tickcastd (built by `cargo build`, or TICKCASTD=path) with
a publisher token, and the `tickcast pub` command to publish into it."""

import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "python-client-token"


def _binary(env: str, name: str) -> str:
    path = os.environ.get(env, str(ROOT / "target" / "debug" / name))
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} not found: build it with `cargo build --bin {name}` (scripts/test does), or set {env}")
    return path


class Daemon:
    def __init__(self, port: int = 0, args=(), extra_toml: str = ""):
        cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        cfg.write(f'[auth]\npublisher_tokens = ["{TOKEN}"]\n[limits]\nhistory_len = 64\n{extra_toml}')
        cfg.close()
        self.cfg = cfg.name
        self.proc = subprocess.Popen(
            [_binary("TICKCASTD", "tickcastd"), "--listen", f"127.0.0.1:{port}", "--config", cfg.name,
             *args],
            stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        self.port = None
        while self.port is None:
            line = self.proc.stderr.readline()
            if not line and time.monotonic() > deadline:
                raise RuntimeError("tickcastd did not start")
            if " listening on " in line:
                self.port = int(line.split(" listening on ")[1].split(":")[1])
        # Keep draining its log so it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.ws = f"ws://127.0.0.1:{self.port}/ws"
        self.publish_url = f"ws://127.0.0.1:{self.port}/publish"

    def publish(self, topic: str, **fields: float) -> None:
        args = [f"{k}={v}" for k, v in fields.items()]
        out = subprocess.run([_binary("TICKCAST", "tickcast"), "pub", self.publish_url, "--token", TOKEN,
                              topic, *args], capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr

    def kill(self) -> None:
        """SIGKILL: no goodbye, unacknowledged updates may be lost."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def daemon():
    d = Daemon()
    yield d
    d.stop()
