"""What the client accepts from a server: the reference's shapes, and other spellings of them."""

from __future__ import annotations

import json

import pytest

from batchgen.adapters.answers import parse_status
from batchgen.core.policy import Outcome, classify_status
from batchgen.errors import BadAnswer

URL = "https://r2.example/video.mp4"


@pytest.mark.parametrize(
    ("data", "state", "urls", "code"),
    [
        # the reference, exactly
        (
            {
                "taskId": "t1",
                "state": "success",
                "resultJson": json.dumps({"resultUrls": [URL]}),
                "createTime": 1,
                "completeTime": 2,
                "costTime": 1,
            },
            "success",
            [URL],
            None,
        ),
        (
            {"taskId": "t1", "state": "failed", "failCode": "CONTENT_VIOLATION", "failMsg": "no"},
            "failed",
            [],
            "CONTENT_VIOLATION",
        ),
        ({"taskId": "t1", "state": "pending"}, "pending", [], None),
        ({"taskId": "t1", "state": "processing"}, "processing", [], None),
        # liberal: resultJson already an object, urls at the top, other words and spellings
        (
            {"taskId": "t1", "state": "SUCCESS", "resultJson": {"resultUrls": [URL]}},
            "success",
            [URL],
            None,
        ),
        ({"task_id": "t1", "status": "succeeded", "resultUrls": [URL]}, "success", [URL], None),
        (
            {"id": "t1", "state": "completed", "resultJson": json.dumps({"resultUrls": URL})},
            "success",
            [URL],
            None,
        ),
        (
            {"taskId": "t1", "state": "error", "errorCode": "X", "errorMessage": "boom"},
            "failed",
            [],
            "X",
        ),
        ({"taskId": "t1", "state": "failed"}, "failed", [], "FAILED"),
        ({"taskId": "t1", "state": "queued"}, "pending", [], None),
        ({"taskId": "t1", "state": "running"}, "processing", [], None),
        ({"taskId": "t1", "state": "some-new-word"}, "processing", [], None),  # keep polling
    ],
)
def test_status_answers(data: dict, state: str, urls: list[str], code: str | None) -> None:
    status = parse_status(data, "t1")
    assert (status.state, status.result_urls, status.fail_code) == (state, urls, code)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"taskId": "t1"},  # no state
        {"taskId": "t1", "state": "success"},  # success without a result
        {"taskId": "t1", "state": "success", "resultJson": "{not json"},
        {"taskId": "t1", "state": "success", "resultJson": json.dumps({"resultUrls": []})},
    ],
)
def test_unreadable_status_is_a_bad_answer_to_retry(data: object) -> None:
    with pytest.raises(BadAnswer):
        parse_status(data, "t1")


def test_an_answer_about_an_id_differing_only_by_case_is_another_tasks() -> None:
    """Ids are case-sensitive data (base64 ids of two tasks can differ only by case): the
    answer about `dGFzay0x` must never finish the job whose task is `dgfzay0x`."""
    data = {"taskId": "dGFzay0x", "state": "success", "resultJson": '{"resultUrls":["u"]}'}
    assert parse_status(data, "dGFzay0x").state == "success"
    with pytest.raises(BadAnswer, match="another task"):
        parse_status(data, "dgfzay0x")


def test_failure_text_from_the_server_is_made_printable() -> None:
    status = parse_status(
        {"taskId": "t1", "state": "failed", "failCode": "A\x1b[2J", "failMsg": "x\ny\x00"}, "t1"
    )
    assert status.fail_code == "A [2J" and status.fail_msg == "x y "


@pytest.mark.parametrize(
    ("http", "body", "expected"),
    [
        (200, 0, Outcome.OK),
        (200, 200, Outcome.OK),
        (200, None, Outcome.OK),
        (200, 429, Outcome.RATE_LIMITED),
        (200, 500, Outcome.RETRY),
        (200, 400, Outcome.JOB_FAILED),
        (400, 0, Outcome.JOB_FAILED),
    ],
)
def test_body_code_zero_is_success_under_http_2xx(
    http: int, body: int | None, expected: Outcome
) -> None:
    assert classify_status(http, body, "") is expected
