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
