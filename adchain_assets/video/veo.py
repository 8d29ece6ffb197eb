"""Veo video models (``veo-3.1-fast-generate-preview`` and kin) on the Gemini API.

One clip is one long-running operation: ``POST models/{model}:predictLongRunning`` with the prompt, the start
frame as ``image`` and the end frame as ``lastFrame`` (Veo fills in the motion between them), then
``GET {operation name}`` until it is done, then a download of the video file the result names.

google-genai 3.x refuses ``models.generate_videos`` on the Gemini API ("only supported in Gemini Enterprise
Agent Platform mode"), although the Gemini API still serves Veo. So the start request goes through the SDK's
own API client (``client._api_client.request``, the one private call here), and the poll and the download use
the SDK's public ``operations.get`` and ``files.download``. Every call therefore has the SDK's key header, base
URL, API version and timeout, and HTTP errors surface as its ``google.genai.errors.APIError`` (``.code`` is the
HTTP status) for a retry policy to decide on. A finished operation without a clip (filtered, failed) and one
that does not finish in ``max_wait_s`` become a :class:`VideoGenerationError` with the model's reason.

The Gemini API takes no ``generateAudio``: Veo 3 always makes a sound track there. A request without audio
gets the clip with its sound track dropped (the pictures copied, not re-encoded); it is billed the same.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

from google import genai
from google.genai import types

from adchain_assets.video.base import (
    GeneratedVideo,
    VideoGenerationError,
    VideoGenerator,
    VideoRequest,
    probe,
    without_audio,
)

# USD per second of video (with its sound track; the Gemini API bills Veo 3 clips with sound only). Estimates
# from the Gemini API pricing page (ai.google.dev/gemini-api/docs/pricing) as of late 2025; check before budgeting.
PRICES: dict[str, float] = {
    "veo-3.1-generate-preview": 0.40,
    "veo-3.1-fast-generate-preview": 0.15,
    "veo-3.0-generate-001": 0.40,
    "veo-3.0-fast-generate-001": 0.15,
}
ASPECT_RATIOS = ("16:9", "9:16")
SECONDS = (4, 6, 8)  # the clip lengths Veo 3 makes

# google.rpc.Code names, for an operation error that carries only the number.
_STATUS_NAMES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}


class VeoVideoGenerator(VideoGenerator):
    backend = "veo"

    def __init__(
        self,
        *,
        api_key: str,
        model: str = "veo-3.1-fast-generate-preview",
        base_url: str | None = None,
        poll_interval_s: float = 10.0,
        max_wait_s: float = 600.0,
        timeout_s: float = 120.0,
    ):
        if not api_key or not api_key.strip():
            raise ValueError(
                "GEMINI_API_KEY is not set: the veo backend needs an API key; set it, or use"
                " ADCHAIN_VIDEO_BACKEND=preview"
            )
        self._api_key = api_key.strip()
        self.model = model.removeprefix("models/")
        self.base_url = base_url or None
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self._client: genai.Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        # Written out so that the API key can never leak through a repr in a log or a traceback.
        return (
            f"VeoVideoGenerator(model={self.model!r}, base_url={self.base_url!r},"
            f" poll_interval_s={self.poll_interval_s!r}, max_wait_s={self.max_wait_s!r}, timeout_s={self.timeout_s!r})"
        )

    @property
    def client(self) -> genai.Client:
        """One client (and so one connection pool) per generator, built on first use."""
        with self._client_lock:
            if self._client is None:
                # vertexai=False: a GOOGLE_GENAI_USE_VERTEXAI in the environment must not reroute the calls.
                # v1beta: the SDK's default is now v1, and Veo's predictLongRunning is documented on v1beta.
                options = types.HttpOptions(
                    base_url=self.base_url, api_version="v1beta", timeout=round(self.timeout_s * 1000)
                )
                self._client = genai.Client(api_key=self._api_key, vertexai=False, http_options=options)
            return self._client

    def generate(self, request: VideoRequest, meter=None) -> GeneratedVideo:
        if request.aspect_ratio not in ASPECT_RATIOS:
            raise ValueError(f"Veo makes {' or '.join(ASPECT_RATIOS)} clips, not {request.aspect_ratio}")
        client = self.client
        started = time.perf_counter()
        reply = client._api_client.request("post", f"models/{self.model}:predictLongRunning", start_body(request))
        operation = types.GenerateVideosOperation.from_api_response(_parse(reply.body), is_vertex_ai=False)
        if not operation.name:
            raise VideoGenerationError(f"Veo started no operation: {reply.body[:200]!r}", reason="UNREADABLE_REPLY")
        deadline = started + self.max_wait_s
        while not operation.done:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise VideoGenerationError(
                    f"Veo operation {operation.name} did not finish within {self.max_wait_s:g}s"
                    " (it may still finish, and be billed)",
                    reason="TIMEOUT",
                )
            time.sleep(min(self.poll_interval_s, remaining))
            operation = client.operations.get(operation)

        seconds = {"seconds": veo_seconds(request.duration_s), "resolution": request.resolution}
        try:
            video = _video(operation)
        except VideoGenerationError as error:
            if meter is not None:
                meter(backend=self.backend, model=self.model, kind="video", attempt=1, outcome=error.reason,
                      final=True, latency_s=time.perf_counter() - started, detail={"operation": operation.name})
            raise
        if meter is not None:  # billed per second of video made, from the moment the operation succeeded
            meter(backend=self.backend, model=self.model, kind="video", attempt=1, usage=seconds,
                  latency_s=time.perf_counter() - started, detail={"operation": operation.name})
        mp4 = video.video_bytes or client.files.download(file=video)
        try:
            if not request.audio:
                mp4 = without_audio(mp4)
            info = probe(mp4)
        except (OSError, ValueError) as exc:
            message = f"Veo returned a video that cannot be read: {exc}"
            raise VideoGenerationError(message, reason="UNREADABLE_VIDEO") from exc
        latency_s = time.perf_counter() - started
        return GeneratedVideo(
            mp4=mp4,
            backend=self.backend,
            model=self.model,
            duration_s=info.duration_s,
            width=info.width,
            height=info.height,
            frame_count=info.frame_count,
            fps=info.fps,
            latency_s=latency_s,
            cost_usd=PRICES.get(self.model, 0.0) * info.duration_s,  # billed per second of video made
        )


def start_body(request: VideoRequest) -> dict[str, Any]:
    """The ``predictLongRunning`` body: Veo's (Vertex-shaped) instances and parameters, images as base64."""
    return {
        "instances": [
            {
                "prompt": request.prompt,
                "image": _image(request.start_png),
                "lastFrame": _image(request.end_png),
            }
        ],
        "parameters": {
            "aspectRatio": request.aspect_ratio,
            "durationSeconds": veo_seconds(request.duration_s),
            "resolution": request.resolution,
            "sampleCount": 1,
        },
    }


def veo_seconds(duration_s: float) -> int:
    """The shortest clip length Veo makes that is at least ``duration_s`` (the longest, if none is)."""
    return next((s for s in SECONDS if s >= duration_s), SECONDS[-1])


def _image(png: bytes) -> dict[str, str]:
    # Veo takes Vertex's image shape; it answers Gemini's inlineData with 400 "isn't supported by this model".
    return {"bytesBase64Encoded": base64.b64encode(png).decode("ascii"), "mimeType": "image/png"}


def _parse(body: str | None) -> dict[str, Any]:
    try:
        reply = json.loads(body or "")
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        text = (body or "")[:200]
        raise VideoGenerationError(f"Veo sent a reply that is not a JSON object: {text!r}", reason="UNREADABLE_REPLY")
    return reply


def _video(operation: types.GenerateVideosOperation) -> types.Video:
    """The finished operation's clip, or why there is none in the model's words."""
    if operation.error:
        error = operation.error
        reason = str(error.get("status") or _STATUS_NAMES.get(error.get("code"), error.get("code") or "UNKNOWN"))
        raise VideoGenerationError(
            f"Veo operation {operation.name} failed: {reason}: {error.get('message') or 'no message'}", reason=reason
        )
    response = operation.response
    for generated in (response.generated_videos or []) if response else []:
        if generated.video and (generated.video.uri or generated.video.video_bytes):
            return generated.video
    if response and (response.rai_media_filtered_count or response.rai_media_filtered_reasons):
        reasons = "; ".join(response.rai_media_filtered_reasons or []) or "no reason given"
        raise VideoGenerationError(
            f"Veo filtered the clip of operation {operation.name} (RAI_FILTERED): {reasons}", reason="RAI_FILTERED"
        )
    raise VideoGenerationError(f"Veo operation {operation.name} finished without a video", reason="NO_VIDEO")
