"""The aiohttp routes: the two API endpoints of every model with a spec (`batchgen.models`),
result files, and `/_sim/stats`. A model without a spec gets 404 like any unknown path; a task
is only known at its own model's status endpoint.

API request order: fault `p_reset` -> auth (401) -> sliding rate window (429) -> 429 burst ->
`p_5xx` -> `p_error_in_200` -> `p_slow` -> the endpoint's own work. Only requests that pass
auth consume the rate window; `max_requests_in_window` counts every arrival.

Choices where the reference is silent (documented for clients and tests):
- Unknown taskId: HTTP 404 with `{"code":404,"message":"task not found","data":null}`.
- `Retry-After` is a decimal number of real (already scaled) seconds, e.g. `0.342`, unless
  `retry_after_integer` is set (then whole seconds, at least 1).
- 500 answers carry the JSON envelope; 502 and 503 carry plain text, as proxies do.
- `p_502_after_create`: the task is created, then the answer is an nginx-style 502 HTML page,
  as when a load balancer loses the API's answer. A submit answered so (or reset, or with a
  502/503 page before anything) cannot tell the client whether a task exists: the observer
  counts those by body (`unknowable`, `submits_answered_unknowably` in the stats).
- A submit priced above the balance (billing.py) is answered HTTP 402 with the envelope
  `{"code":402,"message":"Insufficient balance, please recharge","data":null}`; nothing is
  created or charged. The balance is `GET /api/v1/apikeys/current-balance`.
- Result files are served by this same server under `/cdn/<token>/<n>.mp4`; the real service
  uses another host (a CDN). They need no API key and do not count against the rate window.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import math
from email.utils import formatdate
from typing import Any, Protocol

from aiohttp import web

from batchgen import models
from batchgen.manifest.schema import validate_request
from batchgen.simulator.billing import Billing
from batchgen.simulator.config import SimConfig
from batchgen.simulator.faults import FaultDice
from batchgen.simulator.files import UNSATISFIABLE, parse_range, result_file
from batchgen.simulator.ratelimit import SlidingWindow
from batchgen.simulator.stats import Observer
from batchgen.simulator.tasks import Task, TaskStore


class Simulator(Protocol):
    """What the handlers use of the service (simulator/server.py's Simulator): named here so
    the app does not import the server that builds it."""

    config: SimConfig
    store: TaskStore
    window: SlidingWindow
    dice: FaultDice
    credits_left: int | None
    billing: Billing
    observer: Observer
    origin: str

    def now(self) -> float: ...

    def create_task(self, body: dict[str, Any], now: float, model: str = ...) -> Task: ...

    def stats(self) -> dict[str, Any]: ...

SIM: web.AppKey[Simulator] = web.AppKey("simulator")
KEY: web.RequestKey[str] = web.RequestKey("key", str)  # the request's Bearer key
SUBMIT_PATH = "/api/v1/generateTask/{model}"
STATUS_PATH = "/api/v1/statusTask/{model}"
BALANCE_PATH = "/api/v1/apikeys/current-balance"
RATE_MESSAGE = "Rate limit exceeded, please wait and retry"


def build_app(sim: Simulator) -> web.Application:
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[SIM] = sim
    app.router.add_post(SUBMIT_PATH, submit)
    app.router.add_get(STATUS_PATH, status)
    app.router.add_get(BALANCE_PATH, balance)
    app.router.add_get("/cdn/{token}/{index:[0-9]+}.mp4", result)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_route("*", "/api/v1/{tail:.*}", unknown)
    return app


def envelope(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "data": data}


def _model(request: web.Request) -> str | None:
    return request.match_info.get("model")


def _answer(
    request: web.Request,
    endpoint: str,
    http: int,
    body: dict[str, Any],
    task_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    request.app[SIM].observer.record(
        endpoint, request.method, request.path_qs, http, task_id, _model(request)
    )
    return web.json_response(body, status=http, headers=headers)


def _error(
    request: web.Request,
    endpoint: str,
    code: int,
    message: str,
    headers: dict[str, str] | None = None,
    http: int | None = None,
) -> web.Response:
    return _answer(
        request, endpoint, code if http is None else http, envelope(code, message), headers=headers
    )


def _retry_after(sim: Simulator, seconds: float) -> dict[str, str]:
    if sim.config.retry_after_integer:
        return {"Retry-After": str(max(1, math.ceil(seconds)))}
    return {"Retry-After": f"{max(seconds, 0.001):.3f}"}


def _reset(request: web.Request, endpoint: str, task_id: str | None = None) -> web.Response:
    """Close the connection without an answer: the client sees a reset / disconnect."""
    request.app[SIM].observer.record(
        endpoint, request.method, request.path_qs, "reset", task_id, _model(request)
    )
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)  # never reaches the client: aiohttp sees a closed transport


def key_owner(key: str | None) -> str:
    """Which account made a task, as a fingerprint: the journal keeps it, never the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else ""


def _bearer(request: web.Request) -> str | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


async def _guarded(request: web.Request, endpoint: str, work: Any) -> web.Response:
    sim = request.app[SIM]
    dice = sim.dice
    now = sim.now()
    sim.observer.arrival(now)
    if dice.roll("p_reset"):
        await _unknowable(request, endpoint)
        return _reset(request, endpoint)
    key = _bearer(request)
    if key is None:
        return _error(request, endpoint, 401, "Missing API key: send Authorization: Bearer <key>")
    if key not in sim.config.api_keys and key not in sim.keys:
        return _error(request, endpoint, 401, "Invalid API key")
    sim.keys.record(key, endpoint, request.query.get("taskId"))
    refused = sim.keys.refusal(key)  # a revoked key of its own account (simulator/keys.py)
    if refused is not None:
        return _error(request, endpoint, *refused)
    request[KEY] = key
    window = sim.keys.window(key) or sim.window
    if not window.try_acquire(now):
        return _error(
            request, endpoint, 429, RATE_MESSAGE, _retry_after(sim, window.retry_after(now))
        )
    if dice.in_429_burst():
        return _error(
            request,
            endpoint,
            429,
            RATE_MESSAGE,
            _retry_after(sim, sim.config.scaled(dice.uniform(1.0, 5.0))),
        )
    if dice.roll("p_5xx"):
        code = dice.choice((500, 502, 503))
        if code != 500:  # a proxy's page, not the API's envelope
            await _unknowable(request, endpoint)
        return _server_error(request, endpoint, code)
    if dice.roll("p_error_in_200"):
        if dice.choice((429, 500)) == 429:
            return _error(
                request,
                endpoint,
                429,
                RATE_MESSAGE,
                _retry_after(sim, sim.config.scaled(2.0)),
                http=200,
            )
        return _error(request, endpoint, 500, "Internal server error", http=200)
    if dice.roll("p_slow"):
        await asyncio.sleep(sim.config.slow_s)
    return await work(request, sim, sim.now())


async def _unknowable(request: web.Request, endpoint: str) -> None:
    """Count a submit whose answer will not tell whether a task was made (stats)."""
    if endpoint != "submit":
        return
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return
    request.app[SIM].observer.unknowable_answer(body)


NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def _server_error(request: web.Request, endpoint: str, code: int) -> web.Response:
    if code == 500:
        return _error(request, endpoint, 500, "Internal server error")
    request.app[SIM].observer.record(
        endpoint, request.method, request.path_qs, code, model=_model(request)
    )
    if code == 502:
        return web.Response(
            status=502, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html"
        )
    return web.Response(
        status=503,
        text="Service Temporarily Unavailable",
        headers=_retry_after(request.app[SIM], request.app[SIM].config.scaled(5)),
    )


async def submit(request: web.Request) -> web.Response:
    if models.find(request.match_info["model"]) is None:
        return await unknown(request)
    return await _guarded(request, "submit", _submit)


async def _submit(request: web.Request, sim: Simulator, now: float) -> web.Response:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return _error(request, "submit", 400, "Request body must be a JSON object")
    model = request.match_info["model"]
    issues = validate_request(body, model)
    if issues:
        return _error(request, "submit", 400, "; ".join(str(i) for i in issues[:3]))
    if sim.credits_left is not None and sim.credits_left <= 0:
        return _error(request, "submit", 400, "Insufficient credits")
    key = request[KEY]
    if not (sim.keys.billing(key) or sim.billing).can_pay(body, now, model):
        return _error(request, "submit", 402, "Insufficient balance, please recharge")
    own_cap = sim.keys.cap_full(key, now)
    if own_cap is not None:
        message = sim.config.concurrency_message.replace("{limit}", str(own_cap))
        return _error(request, "submit", 429, message, _retry_after(sim, sim.config.scaled(1)))
    if key not in sim.keys and sim.store.in_flight(now) >= sim.config.max_in_flight:
        return _error(
            request,
            "submit",
            429,
            sim.config.concurrency_message.replace("{limit}", str(sim.config.max_in_flight)),
            _retry_after(sim, sim.store.next_free(now)),
        )
    billing = sim.keys.billing(key)  # a key with a balance of its own pays its tasks
    task = sim.create_task(body, now, model, billing, key_owner(_bearer(request)))
    sim.keys.created(key, task.task_id, task.ends, now)
    if sim.dice.roll("p_reset_after_create"):
        sim.observer.unknowable_answer(body)
        return _reset(request, "submit", task.task_id)
    if sim.dice.roll("p_502_after_create"):
        sim.observer.unknowable_answer(body)
        sim.observer.record(
            "submit", request.method, request.path_qs, 502, task.task_id, task.model
        )
        return web.Response(status=502, text=NGINX_502, content_type="text/html")
    return _answer(
        request, "submit", 200, envelope(200, "success", {"taskId": task.task_id}), task.task_id
    )


async def status(request: web.Request) -> web.Response:
    if models.find(request.match_info["model"]) is None:
        return await unknown(request)
    return await _guarded(request, "status", _status)


async def _status(request: web.Request, sim: Simulator, now: float) -> web.Response:
    task_id = request.query.get("taskId", "").strip()
    if not task_id:
        return _error(request, "status", 400, "taskId is required")
    task = sim.store.get(task_id)
    if (
        task is None
        or task.model != request.match_info["model"]
        or not sim.keys.sees(request[KEY], task_id)
    ):
        return _error(request, "status", 404, "task not found")
    data = task.status_data(now, sim.origin)
    return _answer(request, "status", 200, envelope(200, "success", data), task_id)


async def balance(request: web.Request) -> web.Response:
    return await _guarded(request, "balance", _balance)


async def _balance(request: web.Request, sim: Simulator, now: float) -> web.Response:
    billing = sim.keys.billing(request[KEY]) or sim.billing
    return _answer(request, "balance", 200, envelope(200, "success", billing.current(now)))


async def unknown(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    sim.observer.arrival(sim.now())
    return _error(request, "other", 404, f"no such endpoint: {request.method} {request.path}")


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM].stats())


def _plain(request: web.Request, http: int, text: str, task_id: str | None = None):
    request.app[SIM].observer.record("file", request.method, request.path, http, task_id)
    return web.Response(status=http, text=text)


async def result(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    now = sim.now()
    task = sim.store.by_token.get(request.match_info["token"])
    index = int(request.match_info["index"])
    if task is None or index >= task.n_results or task.state_at(now) != "success":
        return _plain(request, 404, "Not Found")
    if now >= task.ends + sim.config.scaled(sim.config.result_lifetime_s):
        if task.expired_status == 403:
            return _plain(request, 403, "Forbidden: this link has expired", task.task_id)
        return _plain(request, 404, "Not Found", task.task_id)
    rf = result_file(task.task_id, index, task.versions[index], sim.config.result_size)
    headers = {
        "Content-Type": "video/mp4",
        "Accept-Ranges": "bytes",
        "ETag": rf.etag,
        "Last-Modified": formatdate(task.complete_ms / 1000, usegmt=True),
    }
    start, end, code = 0, rf.size, 200
    wanted = parse_range(request.headers.get("Range"), rf.size)
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() not in (rf.etag, headers["Last-Modified"]):
        wanted = None
    if wanted is not None and sim.dice.roll("p_file_ignore_range"):
        wanted = None
    if wanted == UNSATISFIABLE:
        request.app[SIM].observer.record("file", request.method, request.path, 416, task.task_id)
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{rf.size}"})
    if isinstance(wanted, tuple):
        start, end, code = wanted[0], wanted[1], 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{rf.size}"
    if code == 200 and request.method == "GET" and sim.dice.roll("p_file_gzip"):
        # A CDN that gzips everything, MP4s included, whatever Accept-Encoding said.
        sim.observer.record("file", request.method, request.path, code, task.task_id)
        body = gzip.compress(rf.read(0, rf.size), compresslevel=1)
        return web.Response(body=body, headers={**headers, "Content-Encoding": "gzip"})
    sim.observer.record("file", request.method, request.path, code, task.task_id)
    resp = web.StreamResponse(status=code, headers=headers)
    resp.content_length = end - start
    if request.method == "HEAD":
        await resp.prepare(request)
        return resp
    cut = sim.dice.roll("p_file_cut")
    trickle = sim.dice.roll("p_file_trickle")
    await resp.prepare(request)
    stop = start + int((end - start) * sim.dice.uniform(0.05, 0.95)) if cut else end
    if trickle:
        step = max(1, math.ceil((end - start) / sim.config.trickle_chunks))
        for chunk in rf.chunks(start, stop, step):
            await resp.write(chunk)
            await asyncio.sleep(sim.config.trickle_delay_s)
    else:
        for chunk in rf.chunks(start, stop):
            await resp.write(chunk)
    if cut:
        if request.transport is not None:
            request.transport.close()  # flushes what was written, then closes: a short body
        return resp
    await resp.write_eof()
    return resp
