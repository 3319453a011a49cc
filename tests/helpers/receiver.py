"""The webhook receiver as a real server for a test."""

from __future__ import annotations

from tests.helpers.waiting import wait_until


class ReceiverServer:
    """The webhook receiver as a real uvicorn server on 127.0.0.1, restartable on the same port."""

    def __init__(self, warehouse, secret: str = "s3cret", port: int = 0):
        import socket

        if not port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        self.port, self.secret, self.warehouse = port, secret, warehouse
        self.url = f"http://127.0.0.1:{port}"
        self.start()

    def start(self) -> None:
        import threading

        import uvicorn

        from latam_messaging.webhooks.receiver import create_app

        config = uvicorn.Config(
            create_app(self.warehouse, self.secret), host="127.0.0.1", port=self.port, log_level="error"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=10, what="the receiver to start", interval=0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def hook_url(self, vendor: str, channel: str | None = None) -> str:
        return f"{self.url}/webhooks/{vendor}/{self.secret}" + (f"/{channel}" if channel else "")


class ReceiverProcess:
    """``python -m latam_messaging.webhooks.receiver --workers N`` as a real process (the way it is deployed),
    on a free port, with the test's environment (its ``messaging_warehouse`` connection)."""

    def __init__(self, workers: int = 1, secret: str = "s3cret", port: int = 0):
        import os
        import socket
        import subprocess
        import sys

        from tests.helpers.paths import ROOT

        if not port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        self.port, self.secret, self.workers = port, secret, workers
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, MESSAGING_WEBHOOK_SECRET=secret)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "include"), str(ROOT), env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "latam_messaging.webhooks.receiver", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout: float = 240) -> ReceiverProcess:
        """Until /health answers and (with ``--workers``) every worker process runs."""
        import requests

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the receiver exited {self.process.returncode}: {self.process.stdout.read()}")
            try:
                requests.get(f"{self.url}/health", timeout=5).raise_for_status()
            except requests.RequestException:
                return False
            return self.workers == 1 or len(self.worker_pids()) == self.workers

        wait_until(
            ready, timeout=timeout,
            what=lambda: f"the receiver process to serve ({len(self.worker_pids())} of {self.workers} workers up)",
        )
        return self

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (uvicorn's supervisor is the parent; its multiprocessing helper,
        the resource tracker, is not a worker)."""
        import psutil

        pids = []
        for child in psutil.Process(self.process.pid).children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline()):
                    pids.append(child.pid)
            except psutil.Error:  # gone (or a zombie) between the listing and the look
                pass
        return pids

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM (a graceful shutdown), then the exit code; killed if it does not exit in time (the
        supervisor handles the signal between worker pings: up to ``WORKER_HEALTHCHECK_S`` behind a
        worker that is still starting on a loaded machine)."""
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("the receiver did not stop on SIGTERM") from None
        return self.process.returncode

    def hook_url(self, vendor: str, channel: str | None = None) -> str:
        return f"{self.url}/webhooks/{vendor}/{self.secret}" + (f"/{channel}" if channel else "")
