"""Veo video models on two documented routes, with no private API of any SDK, and never paid for twice.

One clip is one long-running operation: a start call with the prompt, the start frame as the first frame and the
end frame as ``lastFrame`` (Veo fills in the motion between them), then polls until the operation is done, then the
video. Two routes, chosen by ``route`` (``ADCHAIN_VIDEO_ROUTE``):

* ``gemini`` — the Gemini API's documented REST protocol, spoken with ``httpx2`` (the HTTP client google-genai
  itself uses): ``POST {base}/v1beta/models/{model}:predictLongRunning``, ``GET {base}/v1beta/{operation name}``,
  then ``GET`` of the file URI the result names (the API answers it with a redirect to the bytes). The key travels
  only in the ``x-goog-api-key`` header, and only to the API's own origin: a redirect to another host is followed
  without it (httpx2 strips only ``Authorization`` on such a redirect). google-genai 3.x refuses ``generate_videos`` on the
  Gemini API before sending anything, so the SDK is not used on this route.
* ``vertex`` — Vertex AI (Gemini Enterprise Agent Platform) through google-genai's public
  ``client.models.generate_videos`` and ``client.operations.get`` (``vertexai=True``, project, location, Application
  Default Credentials or explicit ``credentials``); the clip comes back inline (no Cloud Storage bucket is asked for).

Faults, on both routes:

* HTTP 408/429/5xx, timeouts and refused connections are retried with exponential backoff and jitter (the image
  path's formula), ``http_attempts`` requests per call, each bounded by ``timeout_s``. One exception: a start call
  whose request was sent but whose answer never came (read timeout, dropped connection) is *not* repeated, because
  Veo may have started (and will bill) an operation we never heard of; the clip fails with that explanation.
* The operation's name is saved in the request's :class:`~adchain_assets.store.cache.OperationSlot` (beside its cache
  entry, keyed by the request fingerprint) the moment the start call returns. Any later attempt for the same request
  — a retried step, a rerun, another worker after this one was killed — resumes polling that operation. Polls are
  free: a transient poll error is retried until ``max_wait_s``; a deadline passed while the operation still runs is
  a retryable error that starts nothing new. A download error is retried, then retryable (the next attempt
  downloads again from the stored operation).
* Final, with Veo's own words: an operation error (its ``google.rpc`` status and message), a safety filter (RAI
  reasons), a model the endpoint does not know (HTTP 404: the message names the model and ``ADCHAIN_VIDEO_MODEL``),
  any other 4xx. A failed or filtered operation is not billed, so its record is cleared.

The ledger gets one record per operation outcome (billed seconds on success, once, even across resumes) and one per
refused start call. The Gemini API takes no ``generateAudio``: Veo 3 always makes a sound track there; a request
without audio gets the clip with its sound track dropped (the pictures copied, not re-encoded), billed the same.

What it cannot do: recover a clip whose file the API has already deleted (Gemini API files live about two days);
know whether a start call that timed out after sending started an operation.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from urllib.parse import urljoin, urlsplit

import httpx2

from adchain_assets.media.mp4 import probe, without_audio
from adchain_assets.plan.catalogue import DEFAULT_VIDEO_MODEL, model_entry, price
from adchain_assets.providers.video.base import (
    DEFAULT_VERTEX_LOCATION,
    GeneratedVideo,
    OperationRecord,
    VideoGenerationError,
    VideoGenerator,
    VideoRequest,
)

logger = logging.getLogger(__name__)

GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
HTTP_RETRY_STATUSES: tuple[int, ...] = (408, 429, 500, 502, 503, 504)
ASPECT_RATIOS = ("16:9", "9:16")  # for a model the catalogue does not know
SECONDS = (4, 6, 8)  # the clip lengths Veo 3 makes
MODEL_VARIABLE = "ADCHAIN_VIDEO_MODEL"
_EXP_BASE = 2.0

# Operation errors that say the service failed, not the request: the clip fails this attempt (retryably); a failed
# operation is not billed, so the next attempt may start a new one. Any other status is final.
TRANSIENT_OPERATION_STATUSES = frozenset({"INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "RESOURCE_EXHAUSTED"})

# google.rpc.Code names, for an operation error that carries only the number.
_STATUS_NAMES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}


@dataclass(frozen=True)
class Outcome:
    """A finished operation, route-neutral: an error, a filter, or the clip (inline bytes or a URI to fetch)."""

    error: Optional[dict[str, Any]] = None
    filtered_reasons: tuple[str, ...] = ()
    filtered: bool = False
    video_bytes: Optional[bytes] = None
    video_uri: Optional[str] = None


class _Gone(Exception):
    """The endpoint no longer knows a stored operation (HTTP 404 on its poll)."""


class _Transient(Exception):
    """One request failed in a way another request may not: carries the error to raise once retries are spent."""

    def __init__(self, error: VideoGenerationError, after_send: bool = False):
        super().__init__(str(error))
        self.error = error
        self.after_send = after_send  # the request reached the server, its answer did not reach us


class VeoVideoGenerator(VideoGenerator):
    backend = "veo"

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        model: str = DEFAULT_VIDEO_MODEL,
        route: str = "gemini",
        base_url: Optional[str] = None,
        project: Optional[str] = None,
        location: Optional[str] = None,
        credentials: Any = None,
        poll_interval_s: float = 10.0,
        max_wait_s: float = 600.0,
        timeout_s: float = 120.0,
        http_attempts: int = 5,
        initial_delay_s: float = 1.0,
        max_delay_s: float = 30.0,
    ):
        """``route`` ``gemini`` needs ``api_key``; ``vertex`` needs ``project`` (``location`` defaults to
        us-central1; ``credentials`` to Application Default Credentials). ``base_url`` points either route at a
        proxy or a local protocol server. ``timeout_s`` bounds each HTTP request, ``http_attempts`` the requests
        per call on transient faults; ``max_wait_s`` bounds the wait for one operation in one attempt."""
        if route not in ("gemini", "vertex"):
            raise ValueError(f"unknown Veo route {route!r}: ADCHAIN_VIDEO_ROUTE must be gemini or vertex")
        if route == "gemini" and not (api_key or "").strip():
            raise ValueError(
                "GEMINI_API_KEY is not set: the veo backend on the Gemini API needs an API key; set it, use"
                " ADCHAIN_VIDEO_ROUTE=vertex with GOOGLE_CLOUD_PROJECT, or ADCHAIN_VIDEO_BACKEND=preview"
            )
        if route == "vertex" and not (project or "").strip():
            raise ValueError(
                "GOOGLE_CLOUD_PROJECT is not set: the veo backend on Vertex AI (ADCHAIN_VIDEO_ROUTE=vertex) needs a"
                " Google Cloud project (and GOOGLE_CLOUD_LOCATION, default us-central1)"
            )
        if timeout_s <= 0 or http_attempts < 1 or initial_delay_s < 0 or max_delay_s < 0 or max_wait_s <= 0:
            raise ValueError("VeoVideoGenerator needs timeout_s > 0, http_attempts >= 1, max_wait_s > 0, delays >= 0")
        self._api_key = (api_key or "").strip()
        self.model = model.removeprefix("models/")
        self.route = route
        self.base_url = (base_url or "").rstrip("/") or None
        self.project = (project or "").strip() or None
        self.location = (location or "").strip() or DEFAULT_VERTEX_LOCATION
        self.credentials = credentials
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self.http_attempts = http_attempts
        self.initial_delay_s = initial_delay_s
        self.max_delay_s = max_delay_s
        self._transport_instance: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        # Written out so that the API key can never leak through a repr in a log or a traceback.
        return (
            f"VeoVideoGenerator(model={self.model!r}, route={self.route!r}, base_url={self.base_url!r},"
            f" project={self.project!r}, location={self.location!r}, poll_interval_s={self.poll_interval_s!r},"
            f" max_wait_s={self.max_wait_s!r}, timeout_s={self.timeout_s!r}, http_attempts={self.http_attempts!r})"
        )

    # --- what the model makes -------------------------------------------------------------------------------

    def check(self, request: VideoRequest) -> None:
        """ValueError, before any call, for a request the model cannot make (the catalogue's shapes)."""
        entry = model_entry(self.model) or {}
        ratios = tuple(entry.get("aspect_ratios") or ASPECT_RATIOS)
        if request.aspect_ratio not in ratios:
            raise ValueError(f"Veo ({self.model}) makes {' or '.join(ratios)} clips, not {request.aspect_ratio}")
        resolutions = entry.get("resolutions")
        if resolutions and request.resolution not in resolutions:
            raise ValueError(f"Veo ({self.model}) makes {', '.join(resolutions)} clips, not {request.resolution}")

    # --- one clip -------------------------------------------------------------------------------------------

    def generate(self, request: VideoRequest, meter=None, resume: OperationRecord | None = None) -> GeneratedVideo:
        self.check(request)
        transport = self._transport()
        started = time.perf_counter()
        record = resume.load() if resume is not None else None
        if record is not None and (record.get("model"), record.get("route")) != (self.model, self.route):
            record = None  # another model's operation under this key cannot be this request's
        if record is not None:
            logger.info("Veo: resuming operation %s (started %s)", record["operation"], record.get("started_at"))
        else:
            record = self._start(transport, request, resume, meter, started)
        try:
            outcome = self._wait(transport, record["operation"], started)
        except _Gone:
            if record.get("fresh"):  # just started and already unknown: the endpoint is confused, do not pay again
                raise VideoGenerationError(
                    f"Veo does not know the operation {record['operation']} it just started (HTTP 404 on its poll);"
                    " it is stored with the clip's request, and a retry asks about it again",
                    reason="OPERATION_NOT_FOUND", retryable=True) from None
            # A stored operation the endpoint no longer keeps (they live for days): its clip could not be downloaded
            # either, so a new operation is the only way to the clip.
            logger.warning("Veo: stored operation %s is no longer known to the endpoint; starting a new one",
                           record["operation"])
            if resume is not None:
                resume.clear()
            record = self._start(transport, request, resume, meter, started)
            outcome = self._wait(transport, record["operation"], started)
        name = record["operation"]
        usage = {"seconds": veo_seconds(request.duration_s), "resolution": request.resolution}
        try:
            video_bytes, video_uri = _clip_of(name, outcome)
        except VideoGenerationError as error:  # failed or filtered: nothing billed, nothing to resume
            self._meter(meter, outcome=error.reason, final=not error.retryable, started=started,
                        detail={"operation": name})
            if resume is not None:
                resume.clear()
            raise
        if not record.get("billed"):  # billed per second of video made, once per operation, even across resumes
            self._meter(meter, usage=usage, started=started, detail={"operation": name, "resumed": not record.get("fresh")})
            record = {**{k: v for k, v in record.items() if k != "fresh"}, "billed": True}
            if resume is not None:
                resume.save(record)
        mp4 = video_bytes if video_bytes is not None else self._retrying("download", lambda: transport.download(video_uri))
        try:
            if not request.audio:
                mp4 = without_audio(mp4)
            info = probe(mp4)
        except (OSError, ValueError) as exc:
            raise VideoGenerationError(f"Veo returned a video that cannot be read: {exc}", reason="UNREADABLE_VIDEO") from exc
        return GeneratedVideo(
            mp4=mp4,
            backend=self.backend,
            model=self.model,
            duration_s=info.duration_s,
            width=info.width,
            height=info.height,
            frame_count=info.frame_count,
            fps=info.fps,
            latency_s=time.perf_counter() - started,
            cost_usd=price(self.model, usage) or 0.0,  # unknown price: 0 here, null in the ledger
        )

    def _start(self, transport, request: VideoRequest, resume, meter, started: float) -> dict[str, Any]:
        try:
            name = self._retrying("start", lambda: transport.start(request), start=True)
        except VideoGenerationError as error:
            if not error.retryable:  # refused (final), or unconfirmed after sending (not final: a person decides)
                self._meter(meter, outcome=error.reason, final=not error.reason.startswith("START_"), started=started,
                            detail={"call": "start"})
            raise
        record = {
            "operation": name, "backend": self.backend, "model": self.model, "route": self.route,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if resume is not None:
            resume.save(record)  # before anything else can fail: a retry must find it
        return {**record, "fresh": True}

    def _wait(self, transport, name: str, started: float) -> Outcome:
        deadline = started + self.max_wait_s
        failures = 0
        while True:
            try:
                outcome = transport.poll(name)
                failures = 0
            except _Transient as transient:
                failures += 1
                logger.info("Veo: poll of %s failed (%s); polling again", name, transient.error)
                outcome = None
                last = transient.error
            if outcome is not None:
                return outcome
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                why = f" (the last {failures} polls failed: {last})" if failures else ""
                raise VideoGenerationError(
                    f"Veo operation {name} did not finish within {self.max_wait_s:g}s{why}; it is stored with the"
                    " clip's request: a retry or a rerun resumes polling it and starts no new one",
                    reason="TIMEOUT",
                    retryable=True,
                )
            wait = self.poll_interval_s if not failures else max(self.poll_interval_s, self._backoff_s(failures))
            time.sleep(min(wait, remaining))

    def _retrying(self, what: str, call: Callable[[], Any], start: bool = False) -> Any:
        for attempt in range(1, self.http_attempts + 1):
            try:
                return call()
            except _Transient as transient:
                if start and transient.after_send:
                    error = transient.error
                    raise VideoGenerationError(
                        f"{error} during the start call, after the request was sent: Veo may have started an"
                        " operation that was never reported, so it is not asked again (that could pay twice);"
                        " retry the clip once you have checked",
                        reason=f"START_{error.reason}",
                    ) from None
                if attempt == self.http_attempts:
                    error = transient.error
                    raise VideoGenerationError(
                        f"{error} (Veo {what}, {self.http_attempts} attempts)", reason=error.reason, retryable=True
                    ) from None
                logger.info("Veo %s: %s; retry %d of %d", what, transient.error, attempt, self.http_attempts - 1)
                time.sleep(self._backoff_s(attempt))
        raise AssertionError("unreachable")

    def _backoff_s(self, retry: int) -> float:
        wait = self.initial_delay_s * _EXP_BASE ** (retry - 1) + random.uniform(0, self.initial_delay_s)
        return max(0.0, min(wait, self.max_delay_s))

    def _meter(self, meter, *, started: float, outcome: str = "ok", final: bool = False,
               usage: Optional[dict] = None, detail: Optional[dict] = None) -> None:
        if meter is not None:
            meter(backend=self.backend, model=self.model, kind="video", attempt=1, outcome=outcome, final=final,
                  usage=usage, latency_s=time.perf_counter() - started, detail={"route": self.route, **(detail or {})})

    def _transport(self):
        with self._lock:
            if self._transport_instance is None:
                if self.route == "gemini":
                    self._transport_instance = GeminiRest(self)
                else:
                    self._transport_instance = VertexSdk(self)
            return self._transport_instance

    def key_headers(self) -> dict[str, str]:
        """The Gemini API key header, for requests to the API's own origin only."""
        return {"x-goog-api-key": self._api_key}

    def mask(self, text: str) -> str:
        """``text`` with the API key replaced by ``[redacted]``."""
        return text.replace(self._api_key, "[redacted]") if self._api_key else text


# --- the Gemini API's REST protocol ---------------------------------------------------------------------------


class GeminiRest:
    """``predictLongRunning``, the operation GET and the file download, over httpx2."""

    def __init__(self, owner: VeoVideoGenerator):
        self.owner = owner
        self.base = owner.base_url or GOOGLE_BASE_URL
        self.http = httpx2.Client(timeout=owner.timeout_s, follow_redirects=False)

    def _url(self, path: str) -> str:
        return f"{self.base}/{API_VERSION}/{path}"

    def _send(self, method: str, url: str, *, keyed: bool = True, body: Any = None) -> httpx2.Response:
        headers = self.owner.key_headers() if keyed else {}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode()
        try:
            return self.http.request(method, url, headers=headers, content=content)
        except Exception as exc:
            raise _transport_fault(exc, self.owner) from None

    def _check(self, response: httpx2.Response, what: str) -> Any:
        status = response.status_code
        if status < 300:
            try:
                return response.json()
            except ValueError:
                raise _Transient(VideoGenerationError(
                    f"Veo sent a {what} reply that is not JSON: {response.text[:200]!r}", reason="UNREADABLE_REPLY"))
        raise _http_fault(status, _error_message(response), what, self.owner)

    def start(self, request: VideoRequest) -> str:
        response = self._send("POST", self._url(f"models/{self.owner.model}:predictLongRunning"), body=start_body(request))
        reply = self._check(response, "start")
        name = reply.get("name") if isinstance(reply, dict) else None
        if not name:
            raise VideoGenerationError(f"Veo started no operation: {str(reply)[:200]!r}", reason="UNREADABLE_REPLY")
        return str(name)

    def poll(self, name: str) -> Optional[Outcome]:
        response = self._send("GET", self._url(name))
        if response.status_code == 404:
            raise _Gone(name)
        reply = self._check(response, "poll")
        if not reply.get("done"):
            return None
        if reply.get("error"):
            return Outcome(error=reply["error"])
        result = (reply.get("response") or {}).get("generateVideoResponse") or {}
        for sample in result.get("generatedSamples") or []:
            video = sample.get("video") or {}
            if video.get("uri") or video.get("bytesBase64Encoded"):
                data = video.get("bytesBase64Encoded")
                return Outcome(video_bytes=base64.b64decode(data) if data else None, video_uri=video.get("uri"))
        reasons = tuple(str(r) for r in result.get("raiMediaFilteredReasons") or [])
        return Outcome(filtered=bool(result.get("raiMediaFilteredCount") or reasons), filtered_reasons=reasons)

    def download(self, uri: str) -> bytes:
        url = uri
        if self.owner.base_url and uri.startswith(GOOGLE_BASE_URL):
            url = self.base + uri[len(GOOGLE_BASE_URL):]  # the API's own files, through the configured endpoint
        origin = _origin(url)
        for _ in range(5):  # redirects, by hand: the key goes to the API's origin only
            response = self._send("GET", url, keyed=_origin(url) == origin)
            if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("location"):
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code < 300:
                if not response.content:
                    raise _Transient(VideoGenerationError("Veo's video download was empty", reason="EMPTY_DOWNLOAD"))
                return response.content
            raise _http_fault(response.status_code, _error_message(response), "download", self.owner)
        raise VideoGenerationError(f"Veo's video download redirected too often ({uri})", reason="TOO_MANY_REDIRECTS")


# --- Vertex AI through google-genai's public API --------------------------------------------------------------


class VertexSdk:
    """``client.models.generate_videos`` and ``client.operations.get`` with ``vertexai=True``; no SDK retries (the
    generator's own rules apply, so a start call is never silently repeated)."""

    def __init__(self, owner: VeoVideoGenerator):
        from google import genai
        from google.genai import types

        self.owner = owner
        self.types = types
        options = types.HttpOptions(
            base_url=owner.base_url, timeout=round(owner.timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        self.client = genai.Client(
            vertexai=True, project=owner.project, location=owner.location, credentials=owner.credentials,
            http_options=options,
        )

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        from google.genai import errors

        try:
            return call()
        except errors.APIError as exc:
            if what == "poll" and exc.code == 404:
                raise _Gone(what) from None
            raise _http_fault(exc.code or 0, str(exc.message or exc.status or ""), what, self.owner) from None
        except (ValueError, TypeError, VideoGenerationError):
            raise
        except Exception as exc:
            raise _transport_fault(exc, self.owner) from None

    def start(self, request: VideoRequest) -> str:
        types = self.types
        source = types.GenerateVideosSource(
            prompt=request.prompt, image=types.Image(image_bytes=request.start_png, mime_type="image/png")
        )
        config = types.GenerateVideosConfig(
            last_frame=types.Image(image_bytes=request.end_png, mime_type="image/png"),
            aspect_ratio=request.aspect_ratio,
            duration_seconds=veo_seconds(request.duration_s),
            resolution=request.resolution,
            generate_audio=request.audio,
            number_of_videos=1,
        )
        operation = self._call("start", lambda: self.client.models.generate_videos(
            model=self.owner.model, source=source, config=config))
        if not operation.name:
            raise VideoGenerationError("Veo (Vertex AI) started no operation", reason="UNREADABLE_REPLY")
        return operation.name

    def poll(self, name: str) -> Optional[Outcome]:
        operation = self._call("poll", lambda: self.client.operations.get(self.types.GenerateVideosOperation(name=name)))
        if not operation.done:
            return None
        if operation.error:
            return Outcome(error=dict(operation.error))
        response = operation.response
        for generated in (response.generated_videos or []) if response else []:
            video = generated.video
            if video and (video.video_bytes or video.uri):
                return Outcome(video_bytes=video.video_bytes, video_uri=video.uri)
        reasons = tuple(response.rai_media_filtered_reasons or []) if response else ()
        return Outcome(filtered=bool(response and (response.rai_media_filtered_count or reasons)), filtered_reasons=reasons)

    def download(self, uri: str) -> bytes:
        raise VideoGenerationError(
            f"Veo (Vertex AI) returned the clip as {uri} instead of inline bytes; adchain asks for no Cloud Storage"
            " output and cannot read one", reason="UNREADABLE_REPLY")


# --- helpers --------------------------------------------------------------------------------------------------


def start_body(request: VideoRequest) -> dict[str, Any]:
    """The ``predictLongRunning`` body: Veo's instances and parameters, images as base64 (Vertex's image shape,
    which the Gemini API takes for Veo too; it refuses Gemini's ``inlineData`` and ``generateAudio``)."""
    return {
        "instances": [
            {"prompt": request.prompt, "image": _image(request.start_png), "lastFrame": _image(request.end_png)}
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
    return {"bytesBase64Encoded": base64.b64encode(png).decode("ascii"), "mimeType": "image/png"}


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _error_message(response: httpx2.Response) -> str:
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    except ValueError:
        pass
    return response.text[:300]


def _http_fault(status: int, message: str, what: str, owner: VeoVideoGenerator) -> Exception:
    """An HTTP error: a _Transient to retry (408/429/5xx), else a final VideoGenerationError."""
    detail = owner.mask(" ".join(str(message).split())[:500])
    text = f"Veo answered HTTP {status} to the {what} call" + (f": {detail}" if detail else "")
    if status in HTTP_RETRY_STATUSES:
        return _Transient(VideoGenerationError(text, reason=f"HTTP_{status}", retryable=True))
    if status == 404 and what == "start":
        where = "Vertex AI" if owner.route == "vertex" else f"the Gemini API at {owner.base_url or GOOGLE_BASE_URL}"
        return VideoGenerationError(
            f"Veo model {owner.model!r} is not available on {where} (HTTP 404: {detail or 'not found'}); it may have"
            f" been retired: set {MODEL_VARIABLE} to a current model (`adchain models` lists them, `adchain doctor`"
            " checks them)",
            reason="MODEL_NOT_FOUND",
        )
    if status == 404 and what == "download":
        return VideoGenerationError(
            f"{text}: the clip's file is gone (the Gemini API keeps generated files about two days); to pay for a new"
            " clip, delete this request's stored operation (<cache>/<key[:2]>/<key>.operation.json)",
            reason="VIDEO_EXPIRED")
    if status in (401, 403) or "api key" in detail.lower():
        fix = ("check GEMINI_API_KEY" if owner.route == "gemini"
               else "check the Application Default Credentials and GOOGLE_CLOUD_PROJECT")
        return VideoGenerationError(f"{text} ({fix})", reason=f"HTTP_{status}")
    return VideoGenerationError(f"{text} (not a transient status: not retried)", reason=f"HTTP_{status}")


def _transport_fault(exc: Exception, owner: VeoVideoGenerator) -> Exception:
    """A transport error of httpx2 (or httpx) as a _Transient; anything else is a bug, re-raised as is."""
    mro = type(exc).__mro__
    if not any(cls.__module__.split(".")[0] in ("httpx", "httpx2") for cls in mro):
        return exc
    names = {cls.__name__ for cls in mro}
    detail = owner.mask(str(exc).strip()[:300]) or type(exc).__name__
    if names & {"ConnectError", "ConnectTimeout", "PoolTimeout"}:  # nothing was sent
        return _Transient(VideoGenerationError(f"Veo could not be reached: {detail}", reason="CONNECTION_FAILED",
                                               retryable=True))
    if "TimeoutException" in names:
        return _Transient(VideoGenerationError(
            f"Veo timed out: no answer within {owner.timeout_s:g}s ({type(exc).__name__})", reason="TIMEOUT",
            retryable=True), after_send=True)
    return _Transient(VideoGenerationError(f"Veo dropped the connection: {detail}", reason="DISCONNECTED",
                                           retryable=True), after_send=True)


def _clip_of(name: str, outcome: Outcome) -> tuple[Optional[bytes], Optional[str]]:
    """The finished operation's clip (bytes or URI), or why there is none, in the model's words."""
    if outcome.error:
        error = outcome.error
        code = error.get("code")
        reason = str(error.get("status") or _STATUS_NAMES.get(code, code or "UNKNOWN"))
        transient = reason in TRANSIENT_OPERATION_STATUSES
        raise VideoGenerationError(
            f"Veo operation {name} failed: {reason}: {error.get('message') or 'no message'}"
            + (" (a service fault: not billed; another attempt starts a new operation)" if transient else ""),
            reason=reason, retryable=transient)
    if outcome.video_bytes is not None or outcome.video_uri:
        return outcome.video_bytes, outcome.video_uri
    if outcome.filtered:
        reasons = "; ".join(outcome.filtered_reasons) or "no reason given"
        raise VideoGenerationError(f"Veo filtered the clip of operation {name} (RAI_FILTERED): {reasons}",
                                   reason="RAI_FILTERED")
    raise VideoGenerationError(f"Veo operation {name} finished without a video", reason="NO_VIDEO")
