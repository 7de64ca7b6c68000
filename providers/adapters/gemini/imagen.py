"""Imagen, Google's image model, as OpenAI's /v1/images/generations: shared by the Gemini API (type 24,
`{base}/v1beta/models/{model}:predict` with the API key) and Vertex AI (type 42, the publisher model's
`:predict` with the service account's token), which take and give the same bodies.

Request and answer: https://ai.google.dev/gemini-api/docs/imagen and
https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/imagen-api
(`{instances: [{prompt}], parameters: {sampleCount, aspectRatio, personGeneration, includeRaiReason}}` in,
`{predictions: [{bytesBase64Encoded, mimeType, prompt} | {raiFilteredReason}]}` out). The size helpers
also serve Gemini's own image models (media.py), which take an aspect ratio too.
"""

from __future__ import annotations

import math
import re
from typing import Any

from providers.adapters.base import UpstreamError
from providers.adapters.gemini.convert import invalid
from providers.adapters.openai_shapes import image_item, images_answer

MAX_IMAGES = 4  # sampleCount is 1 to 4 on both APIs
# The aspect ratios Imagen documents; Gemini's image models take more (media.py).
IMAGEN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
PERSON_GENERATION = ("dont_allow", "allow_adult", "allow_all")
# dall-e-3's wide and tall sizes are not exactly 16:9 (1792x1024 is 7:4), but that is what they ask for.
OPENAI_SIZES = {"1792x1024": "16:9", "1024x1792": "9:16"}
_SIZE = re.compile(r"(\d+)[x*](\d+)")


def is_imagen(model: str) -> bool:
    return model.removeprefix("models/").startswith("imagen")


def aspect_ratio(size: Any, ratios: tuple[str, ...], vendor: str) -> str | None:
    """The aspect ratio an OpenAI `size` asks for, None for the vendor's default (1:1). Google makes
    images at its own resolutions, so a size counts by its shape; a shape the vendor does not make is
    refused rather than bent to the nearest one, so a client never gets an image cropped otherwise than
    it asked (1536x1024 is 3:2, which Imagen does not make)."""
    if size in (None, "", "auto"):
        return None
    match = _SIZE.fullmatch(size) if isinstance(size, str) else None
    ratio = OPENAI_SIZES.get(size) if isinstance(size, str) else None
    if ratio is None and match and int(match[1]) and int(match[2]):
        width, height = int(match[1]), int(match[2])
        divisor = math.gcd(width, height)
        ratio = f"{width // divisor}:{height // divisor}"
    if ratio in ratios:
        return ratio
    raise invalid(f"{vendor} makes images in the aspect ratios {', '.join(ratios)}: `size` {size!s} is none of "
                  f"them (1024x1024 is 1:1, 1792x1024 16:9 and 1024x1792 9:16).", "invalid_size", param="size")


def filtered_error(reasons: list[str], vendor: str) -> UpstreamError:
    """Every image was withheld by the vendor's safety filters: the prompt's fault, not the channel's."""
    detail = "; ".join(dict.fromkeys(reasons))  # Imagen repeats one reason per image filtered
    return invalid(f"{vendor} filtered out every image it made: {detail}", "content_filter")


def imagen_request(body: dict) -> dict:
    n = body.get("n", 1)
    if n > MAX_IMAGES:
        raise invalid(f"Imagen makes at most {MAX_IMAGES} images per request: `n` must be 1 to {MAX_IMAGES}.",
                      "invalid_value", param="n")
    # includeRaiReason: an image the safety filters withhold comes back as its reason instead of
    # silently missing, so an answer without images can say why.
    parameters: dict[str, Any] = {"sampleCount": n, "includeRaiReason": True}
    ratio = aspect_ratio(body.get("size"), IMAGEN_RATIOS, "Imagen")
    if ratio:
        parameters["aspectRatio"] = ratio
    # Not an OpenAI field: Imagen's own switch for pictures of people, taken as the client names it.
    person = body.get("person_generation")
    if person is not None:
        if person not in PERSON_GENERATION:
            raise invalid(f"`person_generation` must be one of {', '.join(PERSON_GENERATION)}.", "invalid_value",
                          param="person_generation")
        parameters["personGeneration"] = person
    return {"instances": [{"prompt": body.get("prompt")}], "parameters": parameters}


def imagen_answer(payload: dict, body: dict) -> bytes:
    """The predictions as OpenAI's images answer. Images the filters withheld are left out (Google does
    not bill them, and the relay bills per image delivered); none at all is an error, and free."""
    data: list[dict] = []
    reasons: list[str] = []
    for prediction in payload.get("predictions") or ():
        if not isinstance(prediction, dict):
            continue
        if isinstance(prediction.get("bytesBase64Encoded"), str) and prediction["bytesBase64Encoded"]:
            data.append(image_item(str(prediction.get("mimeType") or "image/png"), prediction["bytesBase64Encoded"],
                                   body, prediction.get("prompt")))
        elif prediction.get("raiFilteredReason"):
            reasons.append(str(prediction["raiFilteredReason"]))
    if data:
        return images_answer(data)
    if reasons:
        raise filtered_error(reasons, "Imagen")
    raise UpstreamError(status=502, message="Imagen answered without images or a reason for their absence.",
                        code="bad_response_body", retryable=False)
