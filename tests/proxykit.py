"""A small HTTP forward proxy on loopback for the proxy tests: absolute-form requests (GET, POST,
any method) and CONNECT tunnels, with a log of what passed through it.

It resolves names itself through `hosts` (name -> address), as a corporate proxy resolves names
the client cannot: a request that reaches a `*.test` name at all went through it. Every
forwarded request gets `Connection: close` upstream, so each client connection carries one
request; that keeps the relay a plain byte pipe after the head.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import yarl


@dataclass
class Passed:
    method: str
    target: str  # the absolute URL, or host:port for CONNECT
    proxy_authorization: str | None


@dataclass
class ForwardProxy:
    hosts: dict[str, str] = field(default_factory=dict)  # name -> address the proxy uses
    credentials: tuple[str, str] | None = None  # require Proxy-Authorization: Basic
    log: list[Passed] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def targets(self, method: str | None = None) -> list[str]:
        return [p.target for p in self.log if method is None or p.method == method]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._one(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        headers = [tuple(x.split(":", 1)) for x in lines[1:] if ":" in x]
        auth = next((v.strip() for k, v in headers if k.lower() == "proxy-authorization"), None)
        self.log.append(Passed(method, target, auth))
        if self.credentials is not None and auth != _basic(*self.credentials):
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
            writer.write(b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n')
            await writer.drain()
            return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(self.hosts.get(host, host), port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            url = yarl.URL(target, encoded=True)
            assert url.is_absolute(), target  # a proxy gets absolute-form requests
            up_reader, up_writer = await asyncio.open_connection(
                self.hosts.get(url.host or "", url.host), url.port
            )
            kept = [
                (k, v)
                for k, v in headers
                if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")
            ]
            out = [f"{method} {url.raw_path_qs} {version}", *(f"{k}:{v}" for k, v in kept)]
            out.append("Connection: close")
            up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            with contextlib.suppress(Exception):
                up_writer.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while chunk := await src.read(65536):
            dst.write(chunk)
            await dst.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(Exception):
            dst.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@contextlib.contextmanager
def refusing_proxy() -> Iterator[tuple[int, list[bytes]]]:
    """A stand-in proxy on loopback: (its port, the request line of each connection), every
    one answered 403 (obstore does not retry it), to see which requests a proxy rule sends."""
    srv = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                seen.append(conn.recv(65536).split(b"\r\n", 1)[0])
                conn.sendall(b"HTTP/1.1 403 no\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield srv.getsockname()[1], seen
    finally:
        srv.close()
