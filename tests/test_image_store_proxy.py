"""The image store follows the run's proxy rule (issue 18 review): obstore's HTTP client reads
HTTP(S)_PROXY itself, so with --no-proxy-env uploads still went through the environment's
proxy, and NO_PROXY was read by another parser than the API's."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from batchgen.adapters.proxies import Proxies
from batchgen.inputs.objectstore import ImageStore, StoreError
from tests.proxykit import refusing_proxy

pytestmark = pytest.mark.timeout(60)

CORP = {"HTTPS_PROXY": "http://alice:s3cret@proxy.corp.test:3128"}


def _options(proxies: Proxies, endpoint: str = "https://r2.example.com") -> dict:
    store = ImageStore("s3://bucket/pre", 3600.0, env={}, proxies=proxies)
    return store.client_options({"endpoint": endpoint} if endpoint else {})


def test_the_stores_proxy_is_the_runs_choice() -> None:
    opts = _options(Proxies(CORP))
    assert opts["proxy_url"] == "http://alice:s3cret@proxy.corp.test:3128"
    assert opts["allow_http"] is False
    assert "proxy_url" in _options(Proxies(CORP), endpoint="")  # AWS's own endpoint: https
    assert "proxy_url" not in _options(Proxies({**CORP, "NO_PROXY": ".example.com"}))
    assert "proxy_url" not in _options(Proxies(CORP, enabled=False))  # --no-proxy-env
    assert "proxy_url" not in _options(Proxies(CORP), endpoint="http://127.0.0.1:9000")
    assert "proxy_url" not in _options(Proxies({"HTTP_PROXY": "proxy.corp.test:3128"}))


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    with refusing_proxy() as got:
        yield got


@pytest.mark.parametrize("enabled", [True, False])
async def test_uploads_go_through_the_proxy_only_when_the_run_says_so(
    listener, tmp_path, monkeypatch, enabled: bool
) -> None:
    port, seen = listener
    proxy = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HTTP_PROXY", proxy)  # what obstore would read on its own
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://s3.store.test:9000",  # a name that does not resolve
    }
    # The rule sends only loopback TARGETS direct; a proxy may live anywhere, here too.
    store = ImageStore(
        "s3://bucket", 60.0, env=env, proxies=Proxies({"HTTP_PROXY": proxy}, enabled=enabled)
    )
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(StoreError) as caught:
        await store.ensure("a.png", str(image), hashlib.sha256(image.read_bytes()).hexdigest())
    assert "not-a-real-secret" not in str(caught.value)
    if enabled:
        assert seen and all(b"s3.store.test:9000" in line for line in seen), seen
    else:
        assert seen == []  # --no-proxy-env: the environment's proxy is not used
