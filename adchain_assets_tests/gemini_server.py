"""A real local HTTP server that speaks Gemini's ``generateContent`` REST protocol.

Tests (and manual runs, and benchmarks) point the real google-genai SDK at it through ``base_url``, so the
whole path is exercised: the SDK's JSON encoding, HTTP, status codes and the reply parsing. It records every
request, answers from a queue of scripted replies first (fault injection: errors, blocked prompts, hangs,
dropped connections) and otherwise with a deterministic image whose pixels depend on the prompt and the
reference images. A request for JSON (``responseMimeType: application/json``, a text model's structured output,
as ``adchain draft`` sends) is answered by default with :func:`draft_brief_answer`: a complete, specific brief
shaped by the request's response schema (its scene count and aspect ratio).

Run it by hand with ``python -m adchain_assets_tests.gemini_server --port 8765 [--latency 3]`` and use
``GEMINI_BASE_URL=http://127.0.0.1:8765 GEMINI_API_KEY=anything ADCHAIN_IMAGE_BACKEND=gemini``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple, Union

from PIL import Image

DEFAULT_MODEL_VERSION = "gemini-2.5-flash-image"
# Output tokens Google bills for one image of about a megapixel (1K): gemini-2.5-flash-image's 1290; the Gemini 3
# image models' 1120 (the figures and sources of the catalogue's `nominal` entries).
IMAGE_OUTPUT_TOKENS = 1290
GEMINI_3_IMAGE_OUTPUT_TOKENS = 1120
IMAGE_INPUT_TOKENS = 258


def image_output_tokens(model: str | None) -> int:
    """What the model named in the request bills for one 1K image."""
    return GEMINI_3_IMAGE_OUTPUT_TOKENS if (model or "").startswith("gemini-3") else IMAGE_OUTPUT_TOKENS

# Output sizes of gemini-2.5-flash-image per aspect ratio.
SIZES = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}

# Google's canonical status names, as they appear in ``{"error": {"status": ...}}``.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_PATH = re.compile(r"^/(?P<version>[^/]+)/models/(?P<model>[^/:]+):generateContent$")


class Reply(NamedTuple):
    """An HTTP answer: a JSON-able body, or raw bytes to send as they are (an unreadable reply).

    ``headers`` are extra response headers (``Retry-After``).
    """

    status: int
    body: Union[dict, bytes]
    headers: "dict[str, str] | None" = None


@dataclass(frozen=True)
class Hang:
    """Answer only after ``seconds`` (to make the client time out), then with ``then`` or the default."""

    seconds: float
    then: "ScriptedReply | None" = None


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering (after ``after_s`` seconds): a connection lost mid-call."""

    after_s: float = 0.0


ScriptedReply = Union[Reply, dict, Hang, Drop, Callable[["RecordedRequest"], Any]]


@dataclass
class RecordedRequest:
    """One request as the server saw it, plus what it answered (filled in once the reply is chosen)."""

    method: str
    path: str
    api_version: str | None
    model: str | None
    headers: dict[str, str]
    body: Any
    prompt_text: str = ""
    images: list[bytes] = field(default_factory=list)
    image_mime_types: list[str] = field(default_factory=list)
    aspect_ratio: str | None = None
    response_modalities: list[str] | None = None
    response_mime_type: str | None = None
    response_schema: Any = None  # generationConfig.responseSchema as sent
    system_instruction: str = ""
    roles: list[str] = field(default_factory=list)  # the role of each content, in order (a conversation's turns)
    error: str | None = None
    reply_status: int | None = None  # None: no answer was sent (a Drop)
    returned_image: bytes | None = None
    reply_body: dict | None = None  # the JSON body sent back (its usageMetadata is what was billed)
    received_at: float = field(default_factory=time.monotonic)  # time.monotonic() when the request was read
    delivered: bool = False  # the whole answer was written to a client still connected


def b64decode(data: str) -> bytes:
    """Either base64 alphabet, padded or not: the SDK sends URL-safe base64, Google's docs show standard."""
    data = data.strip().translate(str.maketrans("-_", "+/"))
    return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)


def _parse_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _record(method: str, path: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
    match = _PATH.match(path.split("?", 1)[0])
    body = _parse_body(raw)
    request = RecordedRequest(
        method=method,
        path=path,
        api_version=match["version"] if match else None,
        model=match["model"] if match else None,
        headers=headers,
        body=body,
    )
    if not isinstance(body, dict):
        request.error = "Invalid JSON payload received."
        return request
    try:
        texts = []
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                # Proto JSON accepts both field spellings, and the SDK mixes them: inlineData{mime_type}.
                inline = part.get("inlineData") or part.get("inline_data")
                if "text" in part:
                    texts.append(part["text"])
                elif inline:
                    request.images.append(b64decode(inline.get("data", "")))
                    request.image_mime_types.append(inline.get("mimeType") or inline.get("mime_type") or "")
        request.prompt_text = "\n".join(texts)
        config = body.get("generationConfig") or {}
        request.aspect_ratio = (config.get("imageConfig") or {}).get("aspectRatio")
        request.response_modalities = config.get("responseModalities")
        request.response_mime_type = config.get("responseMimeType")
        request.response_schema = config.get("responseSchema")
        system = body.get("systemInstruction") or body.get("system_instruction") or {}
        request.system_instruction = "\n".join(p.get("text", "") for p in system.get("parts") or [])
        request.roles = [c.get("role") or "user" for c in body.get("contents") or []]
    except (AttributeError, TypeError, ValueError) as exc:
        request.error = f"Invalid generateContent payload: {exc}"
    return request


def image_size(aspect_ratio: str | None) -> tuple[int, int]:
    """The size gemini-2.5-flash-image returns for ``aspect_ratio``; about a megapixel for others."""
    if aspect_ratio in SIZES:
        return SIZES[aspect_ratio]
    if not aspect_ratio:
        return SIZES["1:1"]
    w, h = (float(x) for x in aspect_ratio.split(":"))
    scale = (1024 * 1024 / (w * h)) ** 0.5
    return max(16, round(w * scale / 16) * 16), max(16, round(h * scale / 16) * 16)


def make_png(seed: bytes, size: tuple[int, int]) -> bytes:
    """A blocky PNG whose every colour comes from ``seed``: cheap to make, different for any other seed."""
    grid = (8, 8)
    colours = hashlib.shake_256(seed).digest(grid[0] * grid[1] * 3)
    image = Image.frombytes("RGB", grid, colours).resize(size, Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _inline(data: bytes, mime: str, thought: bool = False) -> dict:
    part: dict[str, Any] = {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode("ascii")}}
    if thought:
        part["thought"] = True
    return part


def _usage(prompt_tokens: int, output_tokens: int) -> dict:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
    }


def image_reply(
    png_bytes: bytes,
    mime: str = "image/png",
    with_thought: bool = False,
    *,
    prompt_tokens: int = 100,
    output_tokens: int = IMAGE_OUTPUT_TOKENS,
    model_version: str = DEFAULT_MODEL_VERSION,
) -> Reply:
    """A successful reply carrying ``png_bytes`` (any image format, named by ``mime``).

    ``with_thought`` puts a thought text part and a thought image (a different, small image) before the
    real one, as thinking image models do.
    """
    parts = []
    if with_thought:
        parts.append({"text": "Planning the composition.", "thought": True})
        parts.append(_inline(make_png(b"thought:" + png_bytes[:64], (64, 64)), "image/png", thought=True))
    parts.append(_inline(png_bytes, mime))
    return Reply(
        200,
        {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": _usage(prompt_tokens, output_tokens),
            "modelVersion": model_version,
        },
    )


def text_reply(
    text: str,
    *,
    finish_reason: str = "STOP",
    prompt_tokens: int = 100,
    output_tokens: int | None = None,
    thoughts_tokens: int = 0,
    model_version: str = "gemini-3.5-flash",
) -> Reply:
    """A text model's reply carrying ``text`` (a JSON document, for structured output)."""
    output = len(text) // 4 + 1 if output_tokens is None else output_tokens
    usage = {
        **_usage(prompt_tokens, output),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": output}],
    }
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return Reply(
        200,
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish_reason, "index": 0}],
            "usageMetadata": usage,
            "modelVersion": model_version,
        },
    )


def json_reply(document: Any, **kwargs: Any) -> Reply:
    """A structured-output reply: ``document`` as the JSON text of the answer."""
    return text_reply(json.dumps(document), **kwargs)


_DRAFT_SCENES = [
    ("The woman on a wrought-iron Paris balcony at dawn, rooftops behind her, the bottle on the balustrade",
     "She steps out through the open French doors, the first light on the rooftops",
     "She rests her hands on the balustrade beside the bottle, looking over the city"),
    ("Close-up of the bottle on the balustrade, the dawn sky reflected in its facets",
     "The bottle in shadow, a thin line of sun reaching its cap",
     "Sunlight fills the glass and throws pink light across the stone"),
    ("The woman spraying the perfume on her wrist, a fine mist catching the light",
     "Her finger rests on the atomiser, the bottle at eye level",
     "The mist hangs in the sunbeam, her eyes half closed"),
    ("The woman smiling toward the camera, the bottle held near her collarbone",
     "She turns from the city toward the camera",
     "She smiles, the bottle glowing in the morning sun"),
]


def draft_brief_answer(request: RecordedRequest) -> dict:
    """A complete brief as a draft request's answer: as many scenes as the response schema asks for, its aspect
    ratio when the schema allows only one, specific descriptions, and the photo set where the prompt says."""
    schema = request.response_schema or {}
    properties = schema.get("properties") or {}
    scenes_schema = properties.get("scenes") or {}
    # proto JSON takes either spelling; google-genai 3.6 sends the schema's fields in snake_case
    count = int(scenes_schema.get("minItems") or scenes_schema.get("min_items") or 4)
    ratios = (properties.get("aspect_ratio") or {}).get("enum") or ["9:16"]
    photo = re.search(r'photo to "([^"]+)"', request.prompt_text)
    scenes = []
    for index in range(count):
        reference, start, end = _DRAFT_SCENES[index % len(_DRAFT_SCENES)]
        scenes.append({
            "subjects": ["bottle"] if index % len(_DRAFT_SCENES) == 1 else ["woman", "bottle"],
            "reference": reference if index < len(_DRAFT_SCENES) else f"{reference}, take {index + 1}",
            "start": start,
            "end": end,
            "continuity": "" if index == 0 else f"Same balcony as scene {index}, a few minutes later",
            "duration_s": 4,
        })
    return {
        "title": "Aube — First Light over Paris",
        "aspect_ratio": ratios[0] if len(ratios) == 1 else "9:16",
        "reference_mode": "chain",
        "look": {
            "style": "cinematic, shallow depth of field, 35 mm film grain",
            "color_palette": "dawn blue, warm gold, blush pink",
            "lighting": "first light of dawn, low sun from the left",
            "composition": "subject on the right third, rooftops in soft focus",
            "mood": "quiet, luminous, intimate",
        },
        "subjects": [
            {
                "id": "woman",
                "kind": "character",
                "description": "Woman, 32 years old, 5'6\", slender build, shoulder-length wavy chestnut brown hair,"
                               " emerald green eyes, light olive skin, small beauty mark near her left eye, wearing an"
                               " ivory silk blouse",
                **({"photo": photo.group(1)} if photo else {}),
            },
            {
                "id": "bottle",
                "kind": "product",
                "description": "Faceted crystal perfume bottle, 100 ml, rectangular with bevelled edges, polished"
                               " rose-gold cap, pale pink liquid, \"AUBE\" engraved in thin capitals on the front",
                **({"photo": None} if photo else {}),
            },
        ],
        "scenes": scenes,
    }


def no_image_reply(
    finish_reason: str, message: str | None = None, text: str | None = None, *, prompt_tokens: int = 100
) -> Reply:
    """A candidate that ends with ``finish_reason`` and no image; ``text`` is what the model says instead."""
    candidate: dict[str, Any] = {"finishReason": finish_reason, "index": 0}
    if text is not None:
        candidate["content"] = {"role": "model", "parts": [{"text": text}]}
    if message is not None:
        candidate["finishMessage"] = message
    return Reply(
        200,
        {
            "candidates": [candidate],
            "usageMetadata": _usage(prompt_tokens, 0),
            "modelVersion": DEFAULT_MODEL_VERSION,
        },
    )


def blocked_prompt_reply(block_reason: str, message: str | None = None, *, prompt_tokens: int = 100) -> Reply:
    """The prompt itself was blocked: no candidates, only ``promptFeedback``."""
    feedback: dict[str, Any] = {"blockReason": block_reason}
    if message is not None:
        feedback["blockReasonMessage"] = message
    return Reply(
        200,
        {
            "promptFeedback": feedback,
            "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
            "modelVersion": DEFAULT_MODEL_VERSION,
        },
    )


def error_reply(
    status: int,
    message: str,
    status_name: str | None = None,
    *,
    retry_after: "int | str | None" = None,
    retry_delay: str | None = None,
) -> Reply:
    """An HTTP error in Google's JSON shape, e.g. 429 RESOURCE_EXHAUSTED.

    ``retry_after`` adds a ``Retry-After`` header; ``retry_delay`` (``"38s"``) a ``google.rpc.RetryInfo``
    detail, the way the Gemini API says how long to back off.
    """
    name = status_name or _STATUS_NAMES.get(status, "UNKNOWN")
    error: dict[str, Any] = {"code": status, "message": message, "status": name}
    if retry_delay is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Reply(status, {"error": error}, headers)


def _first_image(body: Any) -> bytes | None:
    """The first non-thought image of a reply body: what a correct client keeps."""
    try:
        for candidate in (body.get("candidates") or [])[:1]:
            for part in (candidate.get("content") or {}).get("parts") or []:
                if not part.get("thought") and "inlineData" in part:
                    return b64decode(part["inlineData"]["data"])
    except (AttributeError, TypeError, KeyError, ValueError):
        pass  # a deliberately malformed scripted reply
    return None


class LoopbackServer:
    """An HTTP server on loopback in a background thread, usable as a context manager.

    Subclasses call :meth:`_listen` in ``__init__`` and provide ``_handler_class()``; ``_closing`` is set when
    the server shuts down, so a handler that is waiting on purpose (latency, a hang) stops waiting.
    """

    thread_name = "fake-server"

    def _listen(self, host: str, port: int) -> None:
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FakeGemini(LoopbackServer):
    """A Gemini API on 127.0.0.1 that records requests and answers scripted or default replies.

    ``replies`` holds scripted replies, used first and in order: a :class:`Reply` (see the ``*_reply``
    helpers), a plain dict (a 200 body), a :class:`Hang`, a :class:`Drop`, or a callable taking the
    :class:`RecordedRequest` and returning any of those. When it is empty, :meth:`default_reply` answers.
    ``latency_s`` delays every answer: seconds, or a callable taking the :class:`RecordedRequest` and returning
    seconds. ``api_key``, when set, is required in ``x-goog-api-key``.
    ``verbose`` logs each request to stderr.
    """

    thread_name = "fake-gemini"

    def __init__(
        self,
        latency_s: "float | Callable[[RecordedRequest], float]" = 0.0,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
    ):
        self.latency_s = latency_s
        self.api_key = api_key
        self.verbose = verbose
        self.requests: list[RecordedRequest] = []
        self.replies: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()
        self.in_flight = 0  # requests being answered right now
        self.max_in_flight = 0  # the most ever answered at once
        self._listen(host, port)

    @property
    def returned_images(self) -> list[bytes]:
        """The image bytes sent back, one per request that got an image, in request order."""
        with self._lock:
            return [r.returned_image for r in self.requests if r.returned_image is not None]

    def reply(self, *replies: ScriptedReply) -> None:
        """Queue scripted replies for the next requests."""
        with self._lock:
            self.replies.extend(replies)

    def default_reply(self, request: RecordedRequest) -> Reply:
        """A deterministic image sized for the aspect ratio, its pixels a hash of prompt and references, billed as
        the requested model bills a 1K image."""
        seed = hashlib.sha256()
        for chunk in (request.model or "", request.aspect_ratio or "", request.prompt_text):
            seed.update(chunk.encode() + b"\0")
        for image in request.images:
            seed.update(hashlib.sha256(image).digest())
        prompt_tokens = len(request.prompt_text) // 4 + IMAGE_INPUT_TOKENS * len(request.images)
        return image_reply(
            make_png(seed.digest(), image_size(request.aspect_ratio)),
            prompt_tokens=prompt_tokens,
            output_tokens=image_output_tokens(request.model),
            model_version=request.model or DEFAULT_MODEL_VERSION,
        )

    def _answer(self, request: RecordedRequest) -> "Reply | Drop":
        latency = self.latency_s(request) if callable(self.latency_s) else self.latency_s
        if latency:
            self._closing.wait(latency)
        if request.model is None or request.method != "POST":
            return error_reply(404, f"{request.method} {request.path} is not a generateContent call.")
        if request.error:
            return error_reply(400, request.error)
        if self.api_key is not None and request.headers.get("x-goog-api-key") != self.api_key:
            return error_reply(400, "API key not valid. Please pass a valid API key.")
        with self._lock:
            scripted = self.replies.popleft() if self.replies else None
        if scripted is not None:
            return self._resolve(scripted, request)
        if request.response_mime_type == "application/json":
            return json_reply(draft_brief_answer(request), prompt_tokens=len(request.prompt_text) // 4 + 300,
                              model_version=request.model or "gemini-3.5-flash")
        return self.default_reply(request)

    def _resolve(self, scripted: ScriptedReply, request: RecordedRequest) -> "Reply | Drop":
        if isinstance(scripted, Drop):
            self._closing.wait(scripted.after_s)
            return scripted
        if isinstance(scripted, Hang):
            self._closing.wait(scripted.seconds)
            return self._resolve(scripted.then, request) if scripted.then is not None else self.default_reply(request)
        if isinstance(scripted, Reply):
            return scripted
        if isinstance(scripted, dict):
            return Reply(200, scripted)
        if callable(scripted):
            return self._resolve(scripted(request), request)
        if isinstance(scripted, tuple):
            return Reply(*scripted)
        raise TypeError(f"not a scripted reply: {scripted!r}")

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
                request = _record(self.command, self.path, headers, raw)
                with fake._lock:
                    fake.requests.append(request)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    reply = fake._answer(request)
                except Exception as exc:  # a bug in a scripted reply: show it to the client, not a disconnect
                    reply = error_reply(500, f"FakeGemini failed: {exc!r}")
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                if isinstance(reply, Drop):
                    self.close_connection = True  # no status line, no body: the client sees the connection end
                    return
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                request.reply_status = reply.status
                request.reply_body = reply.body if isinstance(reply.body, dict) else None
                request.returned_image = _first_image(reply.body) if reply.status == 200 else None
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (reply.headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                    request.delivered = True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (timed out) while we hung

            def log_message(self, format: str, *args: Any) -> None:
                if fake.verbose:
                    super().log_message(format, *args)

        return Handler


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Gemini generateContent API until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before every answer")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly when a benchmark script kills it
    with FakeGemini(latency_s=args.latency, host=args.host, port=args.port, verbose=True) as fake:
        print(f"Fake Gemini on {fake.base_url} (latency {args.latency}s); Ctrl-C to stop.", flush=True)
        print(f"  GEMINI_BASE_URL={fake.base_url} GEMINI_API_KEY=anything ADCHAIN_IMAGE_BACKEND=gemini", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(f"\nServed {len(fake.requests)} requests.")


if __name__ == "__main__":
    main()
