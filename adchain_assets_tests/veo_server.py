"""A real local HTTP server that speaks Veo's two protocols — the Gemini API's and Vertex AI's — and ``models.get``.

Tests (and manual runs) point :class:`~adchain_assets.providers.video.veo.VeoVideoGenerator` (its own REST client on the
``gemini`` route, the real google-genai SDK on the ``vertex`` route) and the SDK's ``models.get`` (``adchain
doctor``) at it through ``base_url``. The Gemini API:

- ``POST /v1beta/models/{model}:predictLongRunning`` starts an operation. The body is Veo's
  ``{"instances": [{"prompt", "image", "lastFrame"}], "parameters": {...}}`` with images as
  ``{"bytesBase64Encoded", "mimeType"}``; like the real API it refuses Gemini's ``inlineData`` and parameters it
  does not take (``generateAudio``), and answers ``{"name": "models/{model}/operations/{id}"}``.
- ``GET /v1beta/models/{model}/operations/{id}`` polls it: ``{"name", "done": false}``, then done with
  ``response.generateVideoResponse.generatedSamples[0].video.uri``, or with
  ``raiMediaFilteredCount``/``raiMediaFilteredReasons``, or with an ``error``.
- ``GET /v1beta/files/{id}:download?alt=media`` redirects (302) to the MP4, as the real one does.
- ``GET /v1beta/models/{model}`` answers the model (``models.get``), or 404 for a model it does not know.

Vertex AI (what google-genai sends with ``vertexai=True``):

- ``POST /v1beta1/projects/{p}/locations/{l}/publishers/google/models/{model}:predictLongRunning`` starts an
  operation (same instances/parameters body; ``generateAudio`` is accepted here) and answers
  ``{"name": "projects/{p}/locations/{l}/publishers/google/models/{model}/operations/{id}"}``;
- ``POST .../models/{model}:fetchPredictOperation`` with ``{"operationName"}`` polls it; done answers carry the clip
  inline (``response.videos[0].bytesBase64Encoded``), or the RAI filter counts, or an ``error``.
- ``GET /v1beta1/[projects/{p}/locations/{l}/]publishers/google/models/{model}`` is ``models.get``.

``models`` (a set of ids), when given, is what the server knows: any other model answers 404 to ``models.get`` and
to a start call ("not found ... or is not supported"), as a retired model does. ``start_calls`` counts every start
request received (answered or not); :meth:`FakeVeo.fail_polls` and :meth:`FakeVeo.fail_downloads` queue error
replies for the next polls / downloads (fault injection).

Each start takes the next scripted outcome (:class:`Finish`, :class:`Filter`, :class:`Fail`, :class:`Never`, or
a :class:`Reply` to the start request itself), else ``Finish(polls=polls_before_done)``. The served clip is
``Finish.video``, else the server's ``video``, else a preview clip of the request's own start and end frames.
Every start is recorded with its images decoded, so tests can compare them pixel for pixel.

Run it by hand with ``python -m adchain_assets_tests.veo_server --port 8766 [--polls 2] [--models ID ...]`` and use
``GEMINI_BASE_URL=http://127.0.0.1:8766 GEMINI_API_KEY=anything ADCHAIN_VIDEO_BACKEND=veo``.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import signal
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Union

from adchain_assets.providers.video.base import VideoRequest
from adchain_assets.providers.video.preview import PreviewVideoGenerator

from .gemini_server import LoopbackServer, Reply, b64decode, error_reply

# What the Gemini API returns as a video's uri; the SDK downloads it through its own base URL.
FILE_URI = "https://generativelanguage.googleapis.com/v1beta/files/{id}:download?alt=media"
PARAMETERS = {"aspectRatio", "durationSeconds", "resolution", "sampleCount", "negativePrompt", "personGeneration"}
VERTEX_PARAMETERS = {"generateAudio", "seed", "enhancePrompt", "storageUri", "fps"}
DEFAULT_FILTER_REASON = (
    "Your current safety settings for person generation prevented the video from being generated."
    " Support codes: 17301594"
)

_START = re.compile(r"^/(?P<version>[^/]+)/models/(?P<model>[^/:]+):predictLongRunning$")
_VERTEX = re.compile(
    r"^/(?P<version>[^/]+)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/google/models/"
    r"(?P<model>[^/:]+):(?P<verb>predictLongRunning|fetchPredictOperation)$"
)
_MODEL_GET = re.compile(
    r"^/(?P<version>[^/]+)/(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/)?models/(?P<model>[^/:]+)$"
)
_POLL = re.compile(r"^/(?P<version>[^/]+)/(?P<name>models/[^/]+/operations/[a-z0-9]+)$")
_DOWNLOAD = re.compile(r"^/(?P<version>[^/]+)/files/(?P<id>[a-z0-9]+):download$")
_MEDIA = re.compile(r"^/media/(?P<id>[a-z0-9]+)\.mp4$")


@dataclass(frozen=True)
class Finish:
    """Done with a clip after answering ``polls`` polls "not done"; ``video`` overrides the served MP4."""

    polls: int = 0
    video: bytes | None = None


@dataclass(frozen=True)
class Filter:
    """Done without a clip: the safety filter took it, for ``reasons``."""

    reasons: tuple[str, ...] = (DEFAULT_FILTER_REASON,)
    polls: int = 0


@dataclass(frozen=True)
class Fail:
    """Done with an operation error (a ``google.rpc.Status``: ``code`` 13 is INTERNAL)."""

    message: str = "Video generation failed due to an internal error."
    code: int = 13
    polls: int = 0


@dataclass(frozen=True)
class Never:
    """An operation that is never done."""


Outcome = Union[Finish, Filter, Fail, Never, Reply]


@dataclass
class StartRequest:
    """One ``predictLongRunning`` call as the server understood it."""

    model: str
    api_version: str
    prompt: str
    image: bytes
    image_mime_type: str
    last_frame: bytes
    last_frame_mime_type: str
    parameters: dict[str, Any]
    operation: str | None = None
    route: str = "gemini"
    headers: dict[str, str] | None = None

    @property
    def aspect_ratio(self) -> str | None:
        return self.parameters.get("aspectRatio")

    @property
    def duration_seconds(self) -> int | None:
        return self.parameters.get("durationSeconds")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None


@dataclass
class _Operation:
    name: str
    start: StartRequest
    outcome: Outcome
    polls: int = 0
    file_id: str | None = None


class FakeVeo(LoopbackServer):
    """A Veo-on-the-Gemini-API server on 127.0.0.1 that records requests and answers scripted outcomes.

    ``api_key``, when set, is required in ``x-goog-api-key`` on the API paths. ``verbose`` logs requests to stderr.
    """

    thread_name = "fake-veo"

    def __init__(
        self,
        polls_before_done: int = 0,
        video: bytes | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        models: "set[str] | None" = None,
        bearer_token: str | None = None,
    ):
        self.polls_before_done = polls_before_done
        self.models = set(models) if models is not None else None
        self.bearer_token = bearer_token  # when set, required as "Authorization: Bearer ..." on the Vertex paths
        self.start_calls = 0
        self.poll_faults: deque[Reply] = deque()
        self.download_faults: deque[Reply] = deque()
        self.video = video
        self.api_key = api_key
        self.verbose = verbose
        self.requests: list[RecordedRequest] = []
        self.starts: list[StartRequest] = []
        self.outcomes: deque[Outcome] = deque()
        self.files: dict[str, bytes] = {}
        self._operations: dict[str, _Operation] = {}
        self._lock = threading.Lock()
        self._listen(host, port)

    def script(self, *outcomes: Outcome) -> None:
        """Queue outcomes for the next operations started, in order."""
        with self._lock:
            self.outcomes.extend(outcomes)

    def fail_polls(self, *replies: Reply) -> None:
        """Answer the next polls with these replies (e.g. ``error_reply(503, ...)``), then normally."""
        with self._lock:
            self.poll_faults.extend(replies)

    def fail_downloads(self, *replies: Reply) -> None:
        """Answer the next downloads with these replies, then normally."""
        with self._lock:
            self.download_faults.extend(replies)

    def knows(self, model: str) -> bool:
        return self.models is None or model in self.models

    def polls(self, operation: str) -> int:
        """How many times ``operation`` has been polled."""
        with self._lock:
            return self._operations[operation].polls

    # --- the protocol ---

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        route = path.split("?", 1)[0]
        if method == "GET" and (media := _MEDIA.match(route)):
            with self._lock:
                data = self.files.get(media["id"])
            return Reply(200, data) if data is not None else error_reply(404, "No such file.")
        if method == "POST" and (vertex := _VERTEX.match(route)):
            if self.bearer_token is not None and headers.get("authorization") != f"Bearer {self.bearer_token}":
                return error_reply(401, "Request had invalid authentication credentials.")
            if vertex["verb"] == "predictLongRunning":
                prefix = f"projects/{vertex['project']}/locations/{vertex['location']}/publishers/google/models"
                return self._start(vertex["version"], vertex["model"], raw, route_name="vertex", prefix=prefix,
                                   headers=headers)
            return self._poll_vertex(raw)
        if self.api_key is not None and headers.get("x-goog-api-key") != self.api_key:
            return error_reply(400, "API key not valid. Please pass a valid API key.")
        if method == "POST" and (start := _START.match(route)):
            return self._start(start["version"], start["model"], raw, headers=headers)
        if method == "GET" and (poll := _POLL.match(route)):
            fault = self._fault(self.poll_faults)
            return fault if fault is not None else self._poll(poll["name"])
        if method == "GET" and (download := _DOWNLOAD.match(route)):
            fault = self._fault(self.download_faults)
            if fault is not None:
                return fault
            with self._lock:
                known = download["id"] in self.files
            if not known:
                return error_reply(404, f"File {download['id']} not found.")
            return Reply(302, b"", {"Location": f"/media/{download['id']}.mp4"})
        if method == "GET" and (get := _MODEL_GET.match(route)):
            model = get["model"]
            if not self.knows(model):
                return error_reply(404, f"models/{model} is not found for API version {get['version']}.")
            return Reply(200, {"name": f"models/{model}", "displayName": model, "version": "001",
                               "supportedGenerationMethods": ["predictLongRunning", "generateContent"]})
        return error_reply(404, f"{method} {route} is not part of the Veo protocol.")

    def _fault(self, queue: "deque[Reply]") -> Reply | None:
        with self._lock:
            return queue.popleft() if queue else None

    def _start(self, version: str, model: str, raw: bytes, *, route_name: str = "gemini", prefix: str = "models",
               headers: dict[str, str] | None = None) -> Reply:
        with self._lock:
            self.start_calls += 1
        if not self.knows(model):
            return error_reply(
                404, f"models/{model} is not found for API version {version}, or is not supported for"
                " predictLongRunning. Call ListModels to see the list of available models and their supported methods.")
        try:
            start = _parse_start(version, model, raw, vertex=route_name == "vertex")
        except _Invalid as invalid:
            return error_reply(400, str(invalid))
        start.route, start.headers = route_name, dict(headers or {})
        with self._lock:
            self.starts.append(start)
            outcome = self.outcomes.popleft() if self.outcomes else Finish(polls=self.polls_before_done)
            if isinstance(outcome, Reply):
                return outcome
            start.operation = f"{prefix}/{model}/operations/op{len(self._operations) + 1:06d}"
            self._operations[start.operation] = _Operation(start.operation, start, outcome)
        return Reply(200, {"name": start.operation})

    def _poll_vertex(self, raw: bytes) -> Reply:
        fault = self._fault(self.poll_faults)
        if fault is not None:
            return fault
        try:
            name = json.loads(raw or b"{}").get("operationName")
        except (ValueError, AttributeError):
            name = None
        if not name:
            return error_reply(400, "operationName is required.")
        reply = self._poll(name)
        body = reply.body if isinstance(reply.body, dict) else {}
        response = body.get("response")
        if reply.status != 200 or not response:
            return reply
        result = response["generateVideoResponse"]
        vertex: dict[str, Any] = {
            "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
            "raiMediaFilteredCount": result.get("raiMediaFilteredCount", 0),
        }
        if result.get("raiMediaFilteredReasons"):
            vertex["raiMediaFilteredReasons"] = result["raiMediaFilteredReasons"]
        samples = result.get("generatedSamples") or []
        if samples:
            with self._lock:
                data = self.files[samples[0]["video"]["uri"].rsplit("/", 1)[1].split(":", 1)[0]]
            vertex["videos"] = [{"bytesBase64Encoded": base64.b64encode(data).decode("ascii"), "mimeType": "video/mp4"}]
        return Reply(200, {"name": name, "done": True, "response": vertex})

    def _poll(self, name: str) -> Reply:
        with self._lock:
            operation = self._operations.get(name)
            if operation is None:
                return error_reply(404, f"Operation {name} not found.")
            operation.polls += 1
            outcome = operation.outcome
            if isinstance(outcome, Never) or operation.polls <= outcome.polls:
                return Reply(200, {"name": name, "done": False})
        if isinstance(outcome, Fail):
            return Reply(200, {"name": name, "done": True, "error": {"code": outcome.code, "message": outcome.message}})
        if isinstance(outcome, Filter):
            result = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": list(outcome.reasons)}
        else:
            result = {"generatedSamples": [{"video": {"uri": FILE_URI.format(id=self._file(operation, outcome))}}]}
        response = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
            "generateVideoResponse": result,
        }
        return Reply(200, {"name": name, "done": True, "response": response})

    def _file(self, operation: _Operation, outcome: Finish) -> str:
        """The id of the operation's clip, made (once) on its first finished poll."""
        if operation.file_id is None:
            data = outcome.video or self.video or _preview_clip(operation.start)
            with self._lock:
                if operation.file_id is None:
                    operation.file_id = f"file{len(self.files) + 1:06d}"
                    self.files[operation.file_id] = data
        return operation.file_id

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Buffered: headers and body leave in one segment (flushed after each request), so a kept-alive
            # connection does not wait ~40 ms on Nagle + delayed ACK for every poll.
            wbufsize = 1 << 16

            def do_POST(self) -> None:
                self._serve()

            def do_GET(self) -> None:
                self._serve()

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorded = RecordedRequest(self.command, self.path, headers)
                with fake._lock:
                    fake.requests.append(recorded)
                try:
                    reply = fake._answer(self.command, self.path, headers, raw)
                except Exception as exc:  # a bug here: show it to the client, not a disconnect
                    reply = error_reply(500, f"FakeVeo failed: {exc!r}")
                recorded.status = reply.status
                if isinstance(reply.body, bytes):
                    payload, content_type = reply.body, "video/mp4"
                else:
                    payload, content_type = json.dumps(reply.body).encode(), "application/json; charset=UTF-8"
                try:
                    self.send_response(reply.status)
                    for name, value in {"Content-Type": content_type, **(reply.headers or {})}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                if fake.verbose:
                    super().log_message(format, *args)

        return Handler


class _Invalid(ValueError):
    """A start request the real API would answer with 400 INVALID_ARGUMENT."""


def _parse_start(version: str, model: str, raw: bytes, vertex: bool = False) -> StartRequest:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _Invalid("Invalid JSON payload received.")
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise _Invalid("`instances` must hold exactly one instance.")
    instance = instances[0]
    parameters = body.get("parameters") or {}
    unsupported = sorted(set(parameters) - PARAMETERS - (VERTEX_PARAMETERS if vertex else set()))
    if unsupported:
        raise _Invalid(
            f"`{unsupported[0]}` isn't supported by this model. Please remove it or refer to the Gemini API"
            " documentation for supported usage."
        )
    if parameters.get("aspectRatio", "16:9") not in ("16:9", "9:16"):
        raise _Invalid(f"Unsupported aspect ratio: {parameters['aspectRatio']}")
    if parameters.get("durationSeconds", 8) not in (4, 6, 8):
        raise _Invalid(f"Unsupported duration: {parameters['durationSeconds']}")
    if parameters.get("resolution", "720p") not in ("720p", "1080p", "4k"):
        raise _Invalid(f"Unsupported resolution: {parameters['resolution']}")
    image, image_mime = _image(instance, "image")
    last_frame, last_frame_mime = _image(instance, "lastFrame")
    return StartRequest(
        model=model,
        api_version=version,
        prompt=str(instance.get("prompt") or ""),
        image=image,
        image_mime_type=image_mime,
        last_frame=last_frame,
        last_frame_mime_type=last_frame_mime,
        parameters=dict(parameters),
    )


def _image(instance: dict[str, Any], key: str) -> tuple[bytes, str]:
    value = instance.get(key)
    if not isinstance(value, dict):
        raise _Invalid(f"`{key}` is required for first-and-last-frame generation.")
    if "inlineData" in value or "inline_data" in value:
        raise _Invalid("`inlineData` isn't supported by this model.")
    try:
        return b64decode(value["bytesBase64Encoded"]), str(value.get("mimeType") or "")
    except (KeyError, TypeError, ValueError) as exc:
        raise _Invalid(f"`{key}.bytesBase64Encoded` is not base64 image data: {exc!r}") from exc


def _preview_clip(start: StartRequest) -> bytes:
    """A stand-in for Veo's clip: the preview dissolve of the request's own frames, at its length."""
    request = VideoRequest(
        prompt=start.prompt,
        start_png=start.image,
        end_png=start.last_frame,
        aspect_ratio=start.aspect_ratio or "16:9",
        duration_s=start.duration_seconds or 8,
    )
    return PreviewVideoGenerator().generate(request).mp4


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Veo (Gemini API) until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--polls", type=int, default=1, help="polls answered 'not done' before each clip is done")
    parser.add_argument("--models", nargs="*", help="the only model ids it knows (others answer 404); default: any")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    models = set(args.models) if args.models else None
    with FakeVeo(polls_before_done=args.polls, host=args.host, port=args.port, verbose=True, models=models) as fake:
        print(f"Fake Veo on {fake.base_url} ({args.polls} polls per clip); Ctrl-C to stop.", flush=True)
        print(f"  GEMINI_BASE_URL={fake.base_url} GEMINI_API_KEY=anything ADCHAIN_VIDEO_BACKEND=veo", flush=True)
        print(f"  or ADCHAIN_VIDEO_ROUTE=vertex ADCHAIN_VERTEX_BASE_URL={fake.base_url} GOOGLE_CLOUD_PROJECT=p"
              " (with Application Default Credentials)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(f"\nServed {len(fake.requests)} requests, {len(fake.starts)} clips.")


if __name__ == "__main__":
    main()
