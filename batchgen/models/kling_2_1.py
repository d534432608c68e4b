"""Kling 2.1 (../shared/apixo-kling-2-1.md): four modes, 60-90 s for 5 s videos, 90-120 s
for 10 s."""

from batchgen.models.base import ModelSpec

SPEC = ModelSpec(
    id="kling-2-1",
    schema="kling-2-1.request.schema.json",
    title="Kling 2.1",
    generation_s={5: (60.0, 90.0), 10: (90.0, 120.0)},
    aliases={"image_urls": ("image_url", "end_image_url")},
    display=("mode", "duration", "aspect_ratio"),
    # USD per task by "MODE:DURATION": batchgen's estimate (prices are not in the API); a run
    # learns the real ones from the balance (batchgen/money/pricing.py), and those win.
    prices={
        "standard-image-to-video:5": "0.25",
        "standard-image-to-video:10": "0.50",
        "pro-image-to-video:5": "0.45",
        "pro-image-to-video:10": "0.90",
        "master-image-to-video:5": "1.00",
        "master-image-to-video:10": "2.00",
        "master-text-to-video:5": "1.00",
        "master-text-to-video:10": "2.00",
    },
)
