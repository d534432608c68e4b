"""The environment's proxies carry API calls and downloads (issue 18, section 3): through a real
forward proxy on loopback (tests/proxykit.py), NO_PROXY and --no-proxy-env respected, the
proxy's credentials never shown, and private result addresses still refused."""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from batchgen import store as st
from batchgen.adapters.client import ApiClient
from batchgen.adapters.download.attempt import Downloader
from batchgen.adapters.limits import SlidingWindowLimiter
from batchgen.adapters.proxies import Proxies
from batchgen.adapters.sessions import run_proxies
from batchgen.adapters.sinks.local import LocalSinks
from batchgen.cli import build_parser
from batchgen.commands.common import options_from_args
from batchgen.errors import AuthError, UnsafeUrl, UsageError
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, mixed_jobs, options, prepare_state
from tests.proxykit import ForwardProxy

from .conftest import make_body

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
VIDEO = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(4000)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


# ---- the rules, pure ------------------------------------------------------------------------


def test_each_scheme_takes_its_own_variable_then_all_proxy() -> None:
    p = Proxies({"HTTPS_PROXY": "tls-proxy:3128", "ALL_PROXY": "http://any:8080"})
    assert str(p.for_url("https://api.apixo.ai/api/v1").url) == "http://tls-proxy:3128"
    assert str(p.for_url("http://cdn.example/x").url) == "http://any:8080"
    lower = Proxies({"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"})
    assert lower.for_url("https://a.example/").url.host == "low"
    assert Proxies({}).for_url("https://a.example/") is None


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("*", "https://api.apixo.ai/", True),
        ("example.com", "https://cdn.example.com/x", True),
        (".example.com", "https://example.com/x", True),
        ("example.com", "https://badexample.com/x", False),
        ("cdn.example.com:8443", "https://cdn.example.com:8443/x", True),
        ("cdn.example.com:8443", "https://cdn.example.com/x", False),
        ("10.0.0.0/8, 192.168.1.7", "http://10.2.3.4/x", True),
        ("10.0.0.0/8, 192.168.1.7", "http://192.168.1.7:81/x", True),
        ("10.0.0.0/8", "http://11.0.0.1/x", False),
        ("", "http://127.0.0.1:9/x", True),  # loopback: never through a proxy
        ("", "http://localhost/x", True),
        ("", "http://[::1]:80/x", True),
    ],
)
def test_no_proxy(no_proxy: str, url: str, direct: bool) -> None:
    p = Proxies({"HTTP_PROXY": "http://p:1", "HTTPS_PROXY": "http://p:1", "NO_PROXY": no_proxy})
    assert (p.for_url(url) is None) == direct


def test_credentials_leave_the_url_and_never_show() -> None:
    p = Proxies({"HTTPS_PROXY": "http://alice:s3cret@proxy.corp:3128", "HTTP_PROXY": ""})
    proxy = p.for_url("https://api.apixo.ai/")
    assert proxy is not None and proxy.url.password is None and proxy.url.user is None
    for shown in (repr(p), repr(proxy), proxy.describe(), str(proxy.url)):
        assert "s3cret" not in shown and "alice" not in shown
    tunnel = proxy.request_kwargs(proxy.url.with_scheme("https"), {"A": "1"})
    assert tunnel["proxy_headers"]["Proxy-Authorization"].startswith("Basic ")
    assert "Proxy-Authorization" not in tunnel["headers"]  # not inside the TLS tunnel
    plain = proxy.request_kwargs(proxy.url, {"A": "1"})
    assert plain["headers"]["Proxy-Authorization"].startswith("Basic ")


def test_an_unsupported_proxy_is_a_clear_error_without_its_credentials() -> None:
    with pytest.raises(UsageError, match="ALL_PROXY=socks5://h") as caught:
        Proxies({"ALL_PROXY": "socks5://bob:pw@h:1080"})
    assert "pw" not in str(caught.value) and "--no-proxy-env" in str(caught.value)
    assert Proxies({"ALL_PROXY": "socks5://h:1080"}, enabled=False).for_url("http://x/") is None


def test_no_proxy_env_turns_the_environment_off(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("APIXO_API_KEY", KEY)
    for argv, proxied in (([], True), (["--no-proxy-env"], False)):
        args = build_parser().parse_args(["run", "m.yaml", *argv])
        opts = options_from_args(
            args,
            state_path=tmp_path / "s.db",
            output_dir=tmp_path,
            model="m",
            filename_template="x",
        )
        assert (run_proxies(opts).for_url(opts.api.base_url) is not None) == proxied


# ---- through a real proxy --------------------------------------------------------------------


async def test_a_run_goes_through_the_proxy_and_finishes_every_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both names resolve only at the proxy: a request that reached the simulator at all went
    through it. The proxy asks for credentials; they appear nowhere in what the run wrote."""
    names = {"api.proxied.test": "127.0.0.1", "cdn.proxied.test": "127.0.0.1"}
    async with (
        Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=5) as sim,
        ForwardProxy(hosts=names, credentials=("alice", "s3cret-pw")) as proxy,
    ):
        port = sim.origin.rsplit(":", 1)[1]
        sim.origin = f"http://cdn.proxied.test:{port}"  # where its result URLs point
        # `localhost` also exercises the result-host guard's exemption for the proxy's name.
        monkeypatch.setenv("HTTP_PROXY", f"http://alice:s3cret-pw@localhost:{proxy.port}")
        state = prepare_state(tmp_path, mixed_jobs(6, tag="proxied"))
        outcome = await execute(options(tmp_path, f"http://api.proxied.test:{port}/api/v1"))
    assert outcome.exit_code == 0, outcome.messages
    store = st.Store(state, readonly=True)
    assert store.jobs.counts().get(st.DONE) == 6
    store.close()
    posts = proxy.targets("POST")
    assert len(posts) == 6 and all("api.proxied.test" in t and "/generateTask/" in t for t in posts)
    gets = proxy.targets("GET")
    assert any("/statusTask/" in t for t in gets)
    assert sum(t.startswith(f"http://cdn.proxied.test:{port}/") for t in gets) >= 6
    assert all(p.proxy_authorization for p in proxy.log)
    _assert_nowhere(tmp_path, b"s3cret-pw")


def _assert_nowhere(folder: Path, secret: bytes) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix != ".mp4":
            assert secret not in path.read_bytes(), path


class _LocalNames(AbstractResolver):
    """Resolves every name to 127.0.0.1, in the client only: lets a test tell a direct
    connection from one through the proxy with the same URL."""

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


async def _file_server() -> web.AppRunner:
    async def video(_: web.Request) -> web.Response:
        return web.Response(body=VIDEO, content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/r/{name}", video)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


@pytest.mark.parametrize(
    ("env", "enabled", "through_proxy"),
    [
        ({}, True, True),
        ({"NO_PROXY": "cdn.direct.test"}, True, False),
        ({"no_proxy": ".direct.test"}, True, False),
        ({"NO_PROXY": "other.test"}, True, True),
        ({}, False, False),  # --no-proxy-env
    ],
)
async def test_no_proxy_and_the_off_switch_send_downloads_and_api_calls_direct(
    tmp_path: Path, env: dict[str, str], enabled: bool, through_proxy: bool
) -> None:
    files = await _file_server()
    port = files.addresses[0][1]
    try:
        async with (
            ForwardProxy(hosts={"cdn.direct.test": "127.0.0.1"}) as proxy,
            Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_LocalNames())) as s,
        ):
            env = {**env, "HTTP_PROXY": proxy.url}
            proxies = Proxies(env, enabled=enabled)
            url = f"http://cdn.direct.test:{port}/r/a.mp4"
            result = await Downloader(s, sinks=LocalSinks(), proxies=proxies).fetch(
                url, tmp_path / "a.mp4"
            )
            assert result.bytes == len(VIDEO)
            assert (proxy.targets() == [url]) == through_proxy, proxy.targets()

            proxy.log.clear()
            sim_port = sim.origin.rsplit(":", 1)[1]
            proxy.hosts["api.direct.test"] = "127.0.0.1"
            env["NO_PROXY"] = env.get("NO_PROXY", env.get("no_proxy", "")).replace("cdn", "api")
            client = ApiClient(
                s,
                f"http://api.direct.test:{sim_port}/api/v1",
                KEY,
                limiter=SlidingWindowLimiter(1000, 60.0),
                proxies=Proxies(env, enabled=enabled),
            )
            assert await client.submit(make_body())
            assert bool(proxy.targets("POST")) == through_proxy
    finally:
        await files.cleanup()


async def test_a_private_result_address_is_refused_before_any_request_with_a_proxy_set(
    tmp_path: Path,
) -> None:
    async with ForwardProxy() as proxy, aiohttp.ClientSession() as s:
        proxies = Proxies({"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url})
        downloader = Downloader(s, sinks=LocalSinks(), public_only=True, proxies=proxies)
        for url in (
            "http://10.0.0.1/x.mp4",
            "https://169.254.169.254/latest/meta-data",
            "http://[::ffff:192.168.0.1]/x.mp4",
            "http://localhost:8080/x.mp4",  # loopback goes direct: the resolver refuses it
        ):
            with pytest.raises(UnsafeUrl):
                await downloader.fetch(url, tmp_path / "x.mp4")
        assert proxy.log == []


async def test_a_tunnel_the_proxy_refuses_for_credentials_is_the_runs_problem() -> None:
    """CONNECT answered 407: the request never left, and every other would get the same:
    an account error naming the proxy, never its credentials."""
    async with ForwardProxy(credentials=("alice", "right")) as proxy, aiohttp.ClientSession() as s:
        client = ApiClient(
            s,
            "https://api.tunnel.test/api/v1",
            KEY,
            limiter=SlidingWindowLimiter(1000, 60.0),
            proxies=Proxies({"HTTPS_PROXY": proxy.url.replace("://", "://alice:wrong@")}),
        )
        with pytest.raises(AuthError) as caught:
            await client.submit(make_body())
    text = str(caught.value)
    assert caught.value.status == 407 and "wants credentials" in text
    assert f":{proxy.port}" in text and "wrong" not in text and "alice" not in text
    assert proxy.targets("CONNECT") == ["api.tunnel.test:443"]


async def test_an_https_api_behind_a_proxy_wanting_credentials_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The https twin of the plain-http 407 below: the tunnel is refused, so the run stops
    with exit 3 and every job stays pending (none is failed or retried per job)."""
    async with ForwardProxy(credentials=("alice", "s3cret-pw")) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://localhost:{proxy.port}")  # no credentials
        state = prepare_state(tmp_path, mixed_jobs(4, tag="tunnel-407"))
        outcome = await execute(options(tmp_path, "https://api.tunnel.test/api/v1"))
    assert outcome.exit_code == 3, outcome
    assert "wants credentials" in (outcome.account_error or "")
    store = st.Store(state, readonly=True)
    assert store.jobs.counts().get(st.PENDING) == 4
    store.close()
    # the balance read, then the submits already racing: never a retry per job (8 tries each)
    assert len(proxy.targets("CONNECT")) <= 2 + 4


def _self_signed(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for `name` and a client context that trusts only it (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    key, cert = tmp / "k.pem", tmp / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


async def test_an_https_download_is_tunnelled_with_the_proxys_credentials_on_connect(
    tmp_path: Path,
) -> None:
    server_ctx, client_ctx = await asyncio.to_thread(_self_signed, tmp_path, "cdn.tls.test")

    async def video(_: web.Request) -> web.Response:
        return web.Response(body=VIDEO, content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/r/{name}", video)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx).start()
    port = runner.addresses[0][1]
    try:
        async with (
            ForwardProxy(hosts={"cdn.tls.test": "127.0.0.1"}, credentials=("bob", "pw9")) as proxy,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as s,
        ):
            env = {"HTTPS_PROXY": proxy.url.replace("://", "://bob:pw9@")}
            url = f"https://cdn.tls.test:{port}/r/a.mp4"
            result = await Downloader(s, sinks=LocalSinks(), proxies=Proxies(env)).fetch(
                url, tmp_path / "a.mp4"
            )
    finally:
        await runner.cleanup()
    assert result.bytes == len(VIDEO)
    assert [p.method for p in proxy.log] == ["CONNECT"]
    assert proxy.log[0].target == f"cdn.tls.test:{port}"
    assert proxy.log[0].proxy_authorization == "Basic " + base64.b64encode(b"bob:pw9").decode()


async def test_a_proxy_that_wants_credentials_stops_the_run_and_fails_no_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain-http proxy answers 407 itself, before anything reaches the API: that is the
    account's problem (exit 3, jobs still pending), not each job's (failed HTTP_407)."""
    names = {"api.proxied.test": "127.0.0.1"}
    async with (
        Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=5) as sim,
        ForwardProxy(hosts=names, credentials=("alice", "s3cret-pw")) as proxy,
    ):
        port = sim.origin.rsplit(":", 1)[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://localhost:{proxy.port}")  # no credentials
        state = prepare_state(tmp_path, mixed_jobs(4, tag="proxy-407"))
        outcome = await execute(options(tmp_path, f"http://api.proxied.test:{port}/api/v1"))
    assert outcome.exit_code == 3, outcome
    assert "proxy wants credentials" in (outcome.account_error or "")
    store = st.Store(state, readonly=True)
    assert store.jobs.counts().get(st.PENDING) == 4
    store.close()
