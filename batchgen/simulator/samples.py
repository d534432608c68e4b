"""Valid request bodies for tests, benchmarks and demos of the simulator.

One builder, so every test and benchmark sends the same shape the schema accepts for each mode.
"""

from __future__ import annotations

from typing import Any

MODES = (
    "standard-image-to-video",
    "pro-image-to-video",
    "master-image-to-video",
    "master-text-to-video",
)


def sample_body(i: int, mode: str, prompt: str, duration: int = 5) -> dict[str, Any]:
    """A valid async body for job `i` in `mode`: the images or aspect ratio the mode needs."""
    inp: dict[str, Any] = {"mode": mode, "prompt": prompt, "duration": duration}
    if mode == "master-text-to-video":
        inp["aspect_ratio"] = "16:9"
    elif mode == "pro-image-to-video":
        inp["image_urls"] = [f"https://example.com/{i}-a.jpg", f"https://example.com/{i}-b.jpg"]
    else:
        inp["image_urls"] = [f"https://example.com/{i}.jpg"]
    return {"request_type": "async", "input": inp}
