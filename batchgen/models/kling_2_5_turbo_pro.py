"""Kling 2.5 Turbo Pro (../shared/apixo-kling-2-5-turbo-pro.md). Its generation time is not
documented ("fast"): the reference says to assume Kling 2.1's ranges as an upper bound."""

from batchgen.models.base import ModelSpec

SPEC = ModelSpec(
    id="kling-2-5-turbo-pro",
    schema="kling-2-5-turbo-pro.request.schema.json",
    title="Kling 2.5 Turbo Pro",
    generation_s={5: (60.0, 90.0), 10: (90.0, 120.0)},
    aliases={"image_urls": ("image_url", "end_image_url")},
    display=("mode", "duration", "aspect_ratio"),
    # USD per task by "MODE:DURATION": an estimate, learned from the balance at run time.
    prices={
        "text-to-video:5": "0.35",
        "text-to-video:10": "0.70",
        "image-to-video:5": "0.35",
        "image-to-video:10": "0.70",
    },
)
