"""Running the app with uvicorn: in the foreground (``vocoder serve``) or in a background thread (tests, the load
test, notebooks), always on a socket bound before uvicorn starts, so ``port=0`` picks a free port."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from typing import Optional

log = logging.getLogger(__name__)

__all__ = ["bind_socket", "is_loopback", "run", "BackgroundServer"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app, ws_max_size: int, log_level: str = "warning"):
    import uvicorn

    return uvicorn.Config(app, lifespan="on", log_level=log_level, access_log=False, ws="auto",
                          ws_max_size=ws_max_size, timeout_graceful_shutdown=5)


def _ws_max_size(app) -> int:
    state = getattr(getattr(app, "state", None), "vocoder", None)
    # A little more than the body limit, so that an oversize stream message gets our close 1009 with a message.
    return (state.config.max_body_bytes if state is not None else 16 * 2 ** 20) + 1024


def run(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve ``app`` until interrupted (SIGINT / SIGTERM: graceful shutdown)."""
    import uvicorn

    sock = bind_socket(host, port)
    server = uvicorn.Server(_uvicorn_config(app, _ws_max_size(app), log_level))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """``app`` served by uvicorn in a daemon thread on ``host`` (loopback by default) and a free port.

        with BackgroundServer(create_app(voc)) as srv:
            Client(srv.url).synthesize(mel)
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 startup_timeout: float = 120.0):
        import uvicorn

        self.app = app
        self.host = host
        self._sock = bind_socket(host, port)
        self.port = self._sock.getsockname()[1]
        self.server = uvicorn.Server(_uvicorn_config(app, _ws_max_size(app), log_level))
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None
        self.startup_timeout = startup_timeout

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _main(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self._sock]))
        except BaseException as e:  # surfaced by start()
            self._error = e

    def start(self) -> "BackgroundServer":
        self._thread = threading.Thread(target=self._main, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server did not start: {self._error!r}")
            if time.monotonic() - t0 > self.startup_timeout:
                self.stop()
                raise RuntimeError(f"the server did not start within {self.startup_timeout} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # a stuck connection: stop waiting for it
                self.server.force_exit = True
                self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
