"""A real S3-protocol server on loopback for the image-store tests: moto's server (moto[server])
with signature checks on.

- Header-signed requests (uploads, HEAD): moto's own IAM auth mode checks their SigV4
  signatures (`INITIAL_NO_AUTH_ACTION_COUNT` 0, the switch behind moto's
  `set_initial_no_auth_action_count`), against an IAM user's access key made on the server.
- Uploads that carry `x-amz-checksum-sha256` are checked against their body in front, as S3
  does (moto 5.2 stores them unchecked), and refused with BadDigest on a mismatch; a body cut
  short (its client gone) is refused as IncompleteBody and never reaches moto.
- `hold_puts(suffix)` parks each PUT of a key ending in `suffix` until `release()`: a test
  can kill a client while its upload is on the wire (`held` is set once one waits).
- Presigned (query-signed) GETs: moto 5.2 cannot check them (in auth mode it fails every one
  with a KeyError on the missing Authorization header; otherwise it checks nothing), so a WSGI
  layer in front recomputes their SigV4 signature and enforces X-Amz-Expires on its own clock
  (`S3Server.advance`), then lets moto serve the object.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote

import boto3
import pytest
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

REGION = "us-east-1"
_PASS = "HTTP_X_TEST_PRESIGN_CHECKED"


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def presign_problem(environ: dict[str, Any], secrets_by_key: dict[str, str], now: float) -> str:
    """'' when the query-signed request is valid now, else why not (SigV4, query form)."""
    params = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    d = dict(params)
    try:
        access_key, date, region, service, _ = d["X-Amz-Credential"].split("/")
        amz_date, expires = d["X-Amz-Date"], int(d["X-Amz-Expires"])
        signed_headers, signature = d["X-Amz-SignedHeaders"], d["X-Amz-Signature"]
    except (KeyError, ValueError):
        return "malformed"
    secret = secrets_by_key.get(access_key)
    if secret is None or d.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return "unknown key"
    signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    if now > signed_at.timestamp() + expires:
        return "expired"
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(params)
        if k != "X-Amz-Signature"
    )
    headers = ""
    for name in signed_headers.split(";"):
        value = environ.get("HTTP_" + name.upper().replace("-", "_"), "")
        headers += f"{name}:{value.strip()}\n"
    path = environ.get("RAW_URI", environ.get("PATH_INFO", "/")).split("?", 1)[0]
    canonical = "\n".join(
        [environ["REQUEST_METHOD"], path, query, headers, signed_headers, "UNSIGNED-PAYLOAD"]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _sign(
        _sign(_sign(_sign(b"AWS4" + secret.encode(), date), region), service), "aws4_request"
    )
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return "" if hmac.compare_digest(expected, signature) else "signature does not match"


class S3Server:
    def __init__(self, bucket: str = "batchgen-images") -> None:
        self.bucket = bucket
        self.clock_offset = 0.0
        self.requests: Counter[str] = Counter()  # "PUT /bucket/key" -> count
        self.refused: list[str] = []
        self._token = secrets.token_hex(16)
        self._secrets: dict[str, str] = {}
        self.endpoint = ""
        self.access_key = self.secret_key = ""
        self.put_headers: list[dict[str, str]] = []  # the headers of each PUT, lower case
        self._hold_suffix: str | None = None
        self._gate = threading.Event()
        self.held = threading.Event()

    def hold_puts(self, suffix: str) -> None:
        self._hold_suffix, self._gate = suffix, threading.Event()
        self.held.clear()

    def release(self) -> None:
        self._hold_suffix = None
        self._gate.set()

    def _checked_put(self, environ: dict[str, Any], start_response: Any) -> Any | None:
        """None when the PUT may go on to moto (its body re-wrapped), else the refusal."""
        path = environ.get("PATH_INFO", "")
        headers = {
            k[5:].lower().replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        self.put_headers.append(headers)
        if self._hold_suffix is not None and path.endswith(self._hold_suffix):
            self.held.set()
            self._gate.wait(60)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            body = environ["wsgi.input"].read(length) if length else b""
        except OSError:
            body = b""
        if len(body) != length:
            return self._refuse(start_response, "400 Bad Request", "IncompleteBody")
        want = headers.get("x-amz-checksum-sha256")
        if want and base64.b64encode(hashlib.sha256(body).digest()).decode() != want:
            return self._refuse(start_response, "400 Bad Request", "BadDigest")
        environ["wsgi.input"] = io.BytesIO(body)
        return None

    def _refuse(self, start_response: Any, status: str, code: str) -> Any:
        self.refused.append(code)
        start_response(status, [("Content-Type", "application/xml")])
        return [f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()]

    def advance(self, seconds: float) -> None:
        self.clock_offset += seconds

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ.pop(_PASS, None)  # only this layer may vouch for a request
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        self.requests[f"{method} {path}"] += 1
        if "X-Amz-Signature=" in environ.get("QUERY_STRING", ""):
            problem = presign_problem(environ, self._secrets, time.time() + self.clock_offset)
            if problem:
                self.refused.append(f"{method} {path}: {problem}")
                body = f"<Error><Code>AccessDenied</Code><Message>{problem}</Message></Error>"
                start_response("403 Forbidden", [("Content-Type", "application/xml")])
                return [body.encode()]
            environ[_PASS] = self._token
        if method == "PUT" and "aws-chunked" not in environ.get("HTTP_CONTENT_ENCODING", ""):
            refused = self._checked_put(environ, start_response)
            if refused is not None:
                return refused
        return self._moto(environ, start_response)

    def start(self) -> S3Server:
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        anonymous = {"aws_access_key_id": "AKIAINITIALSETUP000", "aws_secret_access_key": "x" * 40}
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION, **anonymous)
        iam.create_user(UserName="batchgen")
        allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [allow]}
        iam.put_user_policy(UserName="batchgen", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="batchgen")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        self._secrets[self.access_key] = self.secret_key
        # From here on every header-signed request must carry a valid signature.
        self._saved = (
            settings.INITIAL_NO_AUTH_ACTION_COUNT,
            ActionAuthenticatorMixin.request_count,
        )
        self._original = ActionAuthenticatorMixin._authenticate_and_authorize_action
        token, original = self._token, self._original

        def authenticate(mixin: Any, *args: Any, **kwargs: Any) -> None:
            if mixin.headers.get("X-Test-Presign-Checked") == token:
                return None  # a presigned GET, checked in front
            return original(mixin, *args, **kwargs)

        ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate  # type: ignore[method-assign]
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def client(self, secret: str | None = None) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret or self.secret_key,
        )

    def env(self) -> dict[str, str]:
        """What a user sets for batchgen: the standard AWS variables."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
        }

    def puts(self) -> int:
        return sum(n for k, n in self.requests.items() if k.startswith("PUT "))

    def stop(self) -> None:
        self.release()
        ActionAuthenticatorMixin._authenticate_and_authorize_action = self._original  # type: ignore[method-assign]
        settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = self._saved
        self._server.shutdown()
        self._thread.join(5)
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()  # moto's backends are per process: the next server starts clean


@contextlib.contextmanager
def running(bucket: str = "batchgen-images") -> Iterator[S3Server]:
    """A started server with `bucket`, stopped afterwards (every S3 test's fixture)."""
    server = S3Server(bucket).start()
    try:
        yield server
    finally:
        server.stop()


def store_env(server: S3Server, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (the environment) with the machine's AWS_* replaced by the server's and HOME
    nowhere, so no ~/.aws of the machine's user is read."""
    env = {k: v for k, v in (base or os.environ).items() if not k.startswith("AWS_")}
    return {**env, **server.env(), "HOME": "/nonexistent"}


def use_store_env(monkeypatch: pytest.MonkeyPatch, server: S3Server, **extra: str) -> None:
    """`store_env` for this process, through the test's monkeypatch (undone after it)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in {**server.env(), "HOME": "/nonexistent", **extra}.items():
        monkeypatch.setenv(name, value)
