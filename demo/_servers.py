"""The demo's servers: a free loopback port, a `tsunagu … serve` started and waited for until it answers, and stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(args: list[str], port: int, health: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``tsunagu <args> --port <port>`` (its output to ``log``) and wait until ``health`` answers 200; the demo stops if it does not."""
    import httpx

    print(f"$ tsunagu {' '.join(args)} --port {port} &", flush=True)
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "tsunagu.cli", *args, "--port", str(port)], stdout=out,
                                   stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 300  # a busy machine can take minutes to start a server; a stuck one is still caught
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"デモを中断します: サーバが起動しませんでした（{log}）。")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{health}", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"デモを中断します: サーバが 300 秒以内に起動しませんでした（{log}）。")


def stop(process: subprocess.Popen) -> None:
    """Stop a server: terminate, and kill it if it has not ended within 30 seconds."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
