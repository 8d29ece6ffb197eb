"""A real local HTTP server that speaks the Gemini API's Veo protocol: start, poll, download.

Tests (and manual runs) point :class:`~adchain_assets.video.veo.VeoVideoGenerator`, and so the real
google-genai SDK, at it through ``base_url``:

- ``POST /v1beta/models/{model}:predictLongRunning`` starts an operation. The body is Veo's
  ``{"instances": [{"prompt", "image", "lastFrame"}], "parameters": {...}}`` with images as
  ``{"bytesBase64Encoded", "mimeType"}``; like the real API it refuses Gemini's ``inlineData`` and parameters it
  does not take (``generateAudio``), and answers ``{"name": "models/{model}/operations/{id}"}``.
- ``GET /v1beta/models/{model}/operations/{id}`` polls it: ``{"name", "done": false}``, then done with
  ``response.generateVideoResponse.generatedSamples[0].video.uri``, or with
  ``raiMediaFilteredCount``/``raiMediaFilteredReasons``, or with an ``error``.
- ``GET /v1beta/files/{id}:download?alt=media`` redirects (302) to the MP4, as the real one does.

Each start takes the next scripted outcome (:class:`Finish`, :class:`Filter`, :class:`Fail`, :class:`Never`, or
a :class:`Reply` to the start request itself), else ``Finish(polls=polls_before_done)``. The served clip is
``Finish.video``, else the server's ``video``, else a preview clip of the request's own start and end frames.
Every start is recorded with its images decoded, so tests can compare them pixel for pixel.

Run it by hand with ``python -m adchain_assets_tests.veo_server --port 8766 [--polls 2]`` and use
``GEMINI_BASE_URL=http://127.0.0.1:8766 GEMINI_API_KEY=anything ADCHAIN_VIDEO_BACKEND=veo``.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Union

from adchain_assets.video.base import VideoRequest
from adchain_assets.video.preview import PreviewVideoGenerator

from .gemini_server import LoopbackServer, Reply, b64decode, error_reply

# What the Gemini API returns as a video's uri; the SDK downloads it through its own base URL.
FILE_URI = "https://generativelanguage.googleapis.com/v1beta/files/{id}:download?alt=media"
PARAMETERS = {"aspectRatio", "durationSeconds", "resolution", "sampleCount", "negativePrompt", "personGeneration"}
DEFAULT_FILTER_REASON = (
    "Your current safety settings for person generation prevented the video from being generated."
    " Support codes: 17301594"
)

_START = re.compile(r"^/(?P<version>[^/]+)/models/(?P<model>[^/:]+):predictLongRunning$")
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
    ):
        self.polls_before_done = polls_before_done
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
        if self.api_key is not None and headers.get("x-goog-api-key") != self.api_key:
            return error_reply(400, "API key not valid. Please pass a valid API key.")
        if method == "POST" and (start := _START.match(route)):
            return self._start(start["version"], start["model"], raw)
        if method == "GET" and (poll := _POLL.match(route)):
            return self._poll(poll["name"])
        if method == "GET" and (download := _DOWNLOAD.match(route)):
            with self._lock:
                known = download["id"] in self.files
            if not known:
                return error_reply(404, f"File {download['id']} not found.")
            return Reply(302, b"", {"Location": f"/media/{download['id']}.mp4"})
        return error_reply(404, f"{method} {route} is not part of the Veo protocol.")

    def _start(self, version: str, model: str, raw: bytes) -> Reply:
        try:
            start = _parse_start(version, model, raw)
        except _Invalid as invalid:
            return error_reply(400, str(invalid))
        with self._lock:
            self.starts.append(start)
            outcome = self.outcomes.popleft() if self.outcomes else Finish(polls=self.polls_before_done)
            if isinstance(outcome, Reply):
                return outcome
            start.operation = f"models/{model}/operations/op{len(self._operations) + 1:06d}"
            self._operations[start.operation] = _Operation(start.operation, start, outcome)
        return Reply(200, {"name": start.operation})

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


def _parse_start(version: str, model: str, raw: bytes) -> StartRequest:
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
    unsupported = sorted(set(parameters) - PARAMETERS)
    if unsupported:
        raise _Invalid(
            f"`{unsupported[0]}` isn't supported by this model. Please remove it or refer to the Gemini API"
            " documentation for supported usage."
        )
    if parameters.get("aspectRatio", "16:9") not in ("16:9", "9:16"):
        raise _Invalid(f"Unsupported aspect ratio: {parameters['aspectRatio']}")
    if parameters.get("durationSeconds", 8) not in (4, 6, 8):
        raise _Invalid(f"Unsupported duration: {parameters['durationSeconds']}")
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
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    with FakeVeo(polls_before_done=args.polls, host=args.host, port=args.port, verbose=True) as fake:
        print(f"Fake Veo on {fake.base_url} ({args.polls} polls per clip); Ctrl-C to stop.", flush=True)
        print(f"  GEMINI_BASE_URL={fake.base_url} GEMINI_API_KEY=anything ADCHAIN_VIDEO_BACKEND=veo", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(f"\nServed {len(fake.requests)} requests, {len(fake.starts)} clips.")


if __name__ == "__main__":
    main()
