"""Start and stop a real ``openzoo serve`` on a free loopback port (used by integration tests and bench)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")


#: Settings every test server runs with (besides its home and address); ``bench/decode.py`` loads the
#: same ones in-process to compare like with like.
SERVER_SETTINGS = {"OPENZOO_CONTEXT_LENGTH": "2048"}


def start_server(home: Path, log: Path, extra_env: dict[str, str] | None = None, *, args: Sequence[str] = (),
                 port: int | None = None, ready_seconds: float = 120) -> Server:
    """``openzoo serve [args]`` on ``port`` (default: a free one; pass the old one to restart a zoo in place),
    once it answers ``GET /``."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENZOO_", "OLLAMA_"))}
    env.update({"OPENZOO_HOME": str(home), "OPENZOO_HOST": f"127.0.0.1:{port}", **SERVER_SETTINGS,
                "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    out = log.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "openzoo", "serve", *args], env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_ready(process, url + "/", ready_seconds)
    except RuntimeError as exc:
        raise RuntimeError(f"openzoo serve {exc}:\n{log.read_text()}") from None
    if ready:
        return Server(url, home, process, log)
    process.kill()
    raise RuntimeError(f"openzoo serve did not answer in time:\n{log.read_text()}")


def wait_ready(process: subprocess.Popen[bytes], url: str, seconds: float) -> bool:
    """Poll ``url`` until it answers 200 (True) or ``seconds`` pass (False); raise if the process exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def stop_server(server: Server) -> None:
    stop_process(server.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL after 15 s: how every server a test started is stopped."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (read from /proc): a server's Ray head, workers and replicas."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_server_tree(server: Server, seconds: float = 60) -> list[int]:
    """Stop a server with SIGTERM and wait for it and every process it started to exit.

    Returns the pids that were still alive after ``seconds`` and had to be killed (by pid, never by
    name: other servers on the machine are not ours), so a test can assert a clean shutdown.
    """
    tree = descendants(server.process.pid)
    server.process.terminate()
    deadline = time.monotonic() + seconds
    try:
        server.process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    while time.monotonic() < deadline and any(alive(pid) for pid in tree):
        time.sleep(0.2)
    survivors = [pid for pid in tree if alive(pid)]
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return survivors


def exit_on_sigterm() -> None:
    """Turn SIGTERM (``timeout``, ``kill``) into SystemExit, so that ``finally`` blocks stop the servers
    a benchmark started instead of leaving them running."""
    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
