"""Gemini image models (``gemini-2.5-flash-image`` and kin) through the google-genai SDK.

One ``generateContent`` call per image: the prompt text, then the reference images in the order the prompt
names them. The SDK does the transport: the key, the request encoding, timeouts and HTTP errors, which
surface as its ``google.genai.errors.APIError`` (``.code`` is the HTTP status) so a retry policy can be
decided on them. The reply is read from its raw JSON instead of the SDK's objects, because the SDK drops
``finishMessage`` for the Gemini API (googleapis/python-genai#2049), and that message is the only place the
model says *why* there is no image. A reply without an image becomes a :class:`GenerationError` carrying
the model's own reason.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
import time
from typing import Any

from google import genai
from google.genai import types
from PIL import Image

from adchain_assets.generators.base import GeneratedImage, GenerationError, ImageGenerator, ImageRequest

# USD per million tokens: (input, output). Output includes thinking tokens, which Google bills as output.
# A 1024x1024 image from gemini-2.5-flash-image is 1,290 output tokens = $0.0387.
PRICES: dict[str, tuple[float, float]] = {
    "gemini-2.5-flash-image": (0.30, 30.0),
    "gemini-2.5-flash-image-preview": (0.30, 30.0),
    "gemini-3-pro-image-preview": (2.0, 120.0),
}

# Image modes a PNG holds as they are; anything else (a CMYK JPEG) has to be converted.
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}


class GeminiGenerator(ImageGenerator):
    backend = "gemini"

    def __init__(
        self,
        *,
        api_key: str,
        model: str = "gemini-2.5-flash-image",
        base_url: str | None = None,
        timeout_s: float = 120.0,
    ):
        if not api_key or not api_key.strip():
            raise ValueError(
                "GEMINI_API_KEY is not set: the gemini backend needs an API key; set it, or use"
                " ADCHAIN_IMAGE_BACKEND=preview"
            )
        self._api_key = api_key.strip()
        self.model = model.removeprefix("models/")
        self.base_url = base_url or None
        self.timeout_s = timeout_s
        self._client: genai.Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        # Written out so that the API key can never leak through a repr in a log or a traceback.
        return f"GeminiGenerator(model={self.model!r}, base_url={self.base_url!r}, timeout_s={self.timeout_s!r})"

    def _http_options(self) -> types.HttpOptions:
        """Transport settings in one place; pinned to v1beta, where ``imageConfig`` lives."""
        return types.HttpOptions(
            base_url=self.base_url,
            api_version="v1beta",
            timeout=round(self.timeout_s * 1000),  # the SDK wants milliseconds
        )

    @property
    def client(self) -> genai.Client:
        """One client (and so one connection pool) per generator, built on first use."""
        with self._client_lock:
            if self._client is None:
                # vertexai=False: a GOOGLE_GENAI_USE_VERTEXAI in the environment must not reroute the calls.
                self._client = genai.Client(api_key=self._api_key, vertexai=False, http_options=self._http_options())
            return self._client

    def generate(self, request: ImageRequest) -> GeneratedImage:
        parts = [types.Part.from_text(text=request.prompt.text)]
        parts += [types.Part.from_bytes(data=ref.png, mime_type="image/png") for ref in request.references]
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=request.aspect_ratio),
            should_return_http_response=True,  # the raw JSON; see the module docstring
        )
        client = self.client
        started = time.perf_counter()
        response = client.models.generate_content(
            model=self.model, contents=[types.Content(role="user", parts=parts)], config=config
        )
        latency_s = time.perf_counter() - started

        reply = _parse_reply(response.sdk_http_response.body if response.sdk_http_response else None)
        png = _as_png(_image_bytes(reply))
        model = reply.get("modelVersion") or self.model
        usage = _usage(reply)
        return GeneratedImage(
            png=png,
            backend=self.backend,
            model=model,
            latency_s=latency_s,
            cost_usd=_cost(PRICES.get(model) or PRICES.get(self.model), usage),
            usage=usage,
        )


def _parse_reply(body: str | None) -> dict[str, Any]:
    try:
        reply = json.loads(body or "")
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        text = (body or "")[:200]
        raise GenerationError(f"Gemini sent a reply that is not a JSON object: {text!r}", reason="UNREADABLE_REPLY")
    return reply


def _image_bytes(reply: dict[str, Any]) -> bytes:
    """The first real image of the first candidate; thought parts are drafts, not the answer."""
    try:
        candidates = reply.get("candidates") or []
        candidate = candidates[0] if candidates else None
        parts = ((candidate or {}).get("content") or {}).get("parts") or []
        for part in parts:
            blob = part.get("inlineData") or {}
            if not part.get("thought") and blob.get("data") and str(blob.get("mimeType", "")).startswith("image/"):
                data = blob["data"].translate(str.maketrans("-_", "+/"))  # either base64 alphabet
                return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (AttributeError, TypeError, IndexError, binascii.Error) as exc:
        raise GenerationError(f"Gemini sent a reply in an unexpected shape: {exc}", reason="UNREADABLE_REPLY") from exc
    raise _no_image_error(reply, candidate, parts)


def _no_image_error(reply: dict[str, Any], candidate: dict | None, parts: list[dict]) -> GenerationError:
    """Say why there is no image in the model's own words: a prompt block reason, or the finish reason."""
    feedback = reply.get("promptFeedback") or {}
    if feedback.get("blockReason"):
        reason = str(feedback["blockReason"])
        message = f"Gemini blocked the prompt: block reason {reason}"
        detail = feedback.get("blockReasonMessage")
    elif candidate is None:
        reason = "NO_CANDIDATES"
        message = "Gemini returned no image: NO_CANDIDATES (no candidate and no block reason)"
        detail = None
    else:
        reason = str(candidate.get("finishReason") or "FINISH_REASON_UNSPECIFIED")
        message = f"Gemini returned no image: finish reason {reason}"
        detail = candidate.get("finishMessage")
    if detail:
        message += f" ({detail})"
    said = " ".join(str(p["text"]).strip() for p in parts if p.get("text") and not p.get("thought"))
    if said:
        message += f"; the model said: {said[:500]!r}"
    return GenerationError(message, reason=reason)


def _as_png(data: bytes) -> bytes:
    """PNG bytes with exactly the returned pixels: a PNG as is, other formats decoded and re-encoded losslessly."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.format == "PNG":
                return data
            pixels = image if image.mode in _PNG_MODES else image.convert("RGBA" if "A" in image.mode else "RGB")
            out = io.BytesIO()
            pixels.save(out, format="PNG", icc_profile=image.info.get("icc_profile"))
            return out.getvalue()
    except (OSError, ValueError) as exc:
        message = f"Gemini returned an image that cannot be decoded: {exc}"
        raise GenerationError(message, reason="UNREADABLE_IMAGE") from exc


def _usage(reply: dict[str, Any]) -> dict[str, int]:
    meta = reply.get("usageMetadata") or {}
    prompt = int(meta.get("promptTokenCount") or 0)
    output = int(meta.get("candidatesTokenCount") or 0) + int(meta.get("thoughtsTokenCount") or 0)
    total = int(meta.get("totalTokenCount") or prompt + output)
    return {"prompt_tokens": prompt, "output_tokens": output, "total_tokens": total}


def _cost(price: tuple[float, float] | None, usage: dict[str, int]) -> float:
    """USD for the call; 0.0 for a model without a price (its usage is still recorded)."""
    if price is None:
        return 0.0
    usd_in, usd_out = price
    return (usage["prompt_tokens"] * usd_in + usage["output_tokens"] * usd_out) / 1_000_000
