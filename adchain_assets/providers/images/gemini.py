"""Gemini image models ("Nano Banana": ``gemini-3.1-flash-image`` and kin) through the google-genai SDK.

One ``generateContent`` call per image: the prompt text, then the reference images in the order the prompt
names them. The SDK does the transport: the key, the request encoding, timeouts, HTTP errors and the HTTP-level
retries. The reply is read from its raw JSON instead of the SDK's objects, because the SDK drops
``finishMessage`` for the Gemini API (googleapis/python-genai#2049), and that message is the only place the
model says *why* there is no image. A reply without an image becomes a :class:`GenerationError` carrying
the model's own reason.

Faults are handled at two levels:

* HTTP level, by the SDK (``HttpOptions.retry_options``; without them it makes exactly one attempt). In
  google-genai 3.6.1 that is a ``tenacity.Retrying`` around each request, waiting
  ``min(initial_delay * exp_base**(n-1) + uniform(0, jitter), max_delay)`` and logging each retry at INFO
  (``google_genai._api_client``). It retries an ``APIError`` whose status is in ``http_status_codes`` and the
  transport's ``TimeoutException`` and ``ConnectError`` (so a per-attempt timeout is retried), but not a
  connection dropped before the reply (``RemoteProtocolError``, ``ReadError``), and it ignores ``Retry-After``
  and the ``RetryInfo`` in Google's error details (we only quote them in the final error). ``timeout_s`` is per
  attempt (httpx applies it to connect, write, read and pool separately) and is also sent as
  ``X-Server-Timeout``. When the SDK gives up, its last error becomes a ``GenerationError`` (``HTTP_429``,
  ``HTTP_503``, ``TIMEOUT``, ``CONNECTION_FAILED``, ...) with ``retryable`` set when the fault is transient.
* Reply level, here: a 200 reply whose reason is in :data:`RETRYABLE_REASONS` (no image, unreadable) and a
  dropped connection are asked again, up to ``no_image_attempts`` calls in all, with the same backoff and
  jitter; each of those calls gets the full HTTP-level retries (at worst ``no_image_attempts * http_attempts``
  requests). A reason in :data:`FINAL_REASONS`, a prompt block and any reason not known here fail at once. The
  tokens of every billed reply are summed into the cost, and ``usage["attempts"]`` counts the calls.

The API key travels only in the SDK's ``x-goog-api-key`` header. Neither the SDK nor httpx2/httpcore2 log
headers, even at DEBUG; but the SDK's retry log line quotes the error body, so a server or proxy that echoed the
key would leak it there: a filter on that logger masks the key of every generator made in this process. Our own
error messages are masked the same way, and an SDK error holding the key is left off the exception chain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import random
import threading
import time
from typing import Any

from google import genai
from google.genai import errors, types
from PIL import Image

from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL, price, tokens_by_modality
from adchain_assets.providers.images.base import GeneratedImage, GenerationError, ImageGenerator, ImageRequest, Meter

logger = logging.getLogger(__name__)


class _MaskKeys(logging.Filter):
    """Masks the API keys of generators in this process in log records (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.keys:
            try:
                text = record.getMessage()
            except Exception:  # a malformed record is the handler's to report, not a reason to fail a call
                return True
            leaked = [key for key in self.keys if key in text]
            if leaked:
                for key in leaked:
                    text = text.replace(key, "[redacted]")
                record.msg, record.args = text, None
        return True


_MASK_KEYS = _MaskKeys()
# Logger filters apply to the records of that very logger only; this is the one the SDK's retries log to.
logging.getLogger("google_genai._api_client").addFilter(_MASK_KEYS)

# Clients by transport settings (the key by its sha256), for this process: see GeminiGenerator.client.
_CLIENTS: dict[tuple, genai.Client] = {}
_CLIENTS_LOCK = threading.Lock()

# Prices live in the model catalogue (adchain_assets/plan/catalogue.yaml), by modality: see adchain_assets.plan.catalogue.

# Statuses the SDK retries: request timeout, rate limit, and the server-side faults.
HTTP_RETRY_STATUSES: tuple[int, ...] = (408, 429, 500, 502, 503, 504)

# Reasons of a 200 reply without a usable image that a second call may well fix. Finish reasons: NO_IMAGE,
# IMAGE_OTHER, OTHER, STOP (text instead of an image), FINISH_REASON_UNSPECIFIED (or none) and
# MALFORMED_RESPONSE (the model's own output was garbled). Ours: NO_CANDIDATES (neither a candidate nor a
# block reason), UNREADABLE_REPLY / UNREADABLE_IMAGE (the reply or its image could not be read) and
# DISCONNECTED (the connection dropped before a reply; the SDK does not retry that).
RETRYABLE_REASONS: frozenset[str] = frozenset(
    {
        "NO_IMAGE",
        "IMAGE_OTHER",
        "OTHER",
        "STOP",
        "FINISH_REASON_UNSPECIFIED",
        "MALFORMED_RESPONSE",
        "NO_CANDIDATES",
        "UNREADABLE_REPLY",
        "UNREADABLE_IMAGE",
        "DISCONNECTED",
    }
)

# Reasons that fail at once: the same request would be refused again (safety and policy blocks, recitation, an
# unsupported language) or would burn the same money again (MAX_TOKENS), or say the request itself is wrong
# (tool-call reasons: adchain sends no tools). A prompt block is final whatever its reason (even OTHER), and so
# is a finish reason in neither set: an outcome nobody here has seen is not worth paying for twice.
FINAL_REASONS: frozenset[str] = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
        "LANGUAGE",
        "MAX_TOKENS",
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MODEL_ARMOR",
        "JAILBREAK",
    }
)

# Image modes a PNG holds as they are; anything else (a CMYK JPEG) has to be converted.
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}

_EXP_BASE = 2.0


class GeminiGenerator(ImageGenerator):
    backend = "gemini"

    def __init__(
        self,
        *,
        api_key: str,
        model: str = DEFAULT_IMAGE_MODEL,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        http_attempts: int = 5,
        initial_delay_s: float = 1.0,
        max_delay_s: float = 30.0,
        no_image_attempts: int = 3,
    ):
        """``timeout_s`` bounds each HTTP attempt; ``http_attempts`` is the SDK's attempts per call (1: no
        HTTP retries); ``no_image_attempts`` the calls made for one image when replies come back without one
        (1: none repeated). Waits between retries at both levels start at ``initial_delay_s``, double, get up to
        ``initial_delay_s`` of random jitter on top, and are capped at ``max_delay_s``.
        """
        if not api_key or not api_key.strip():
            raise ValueError(
                "GEMINI_API_KEY is not set: the gemini backend needs an API key; set it, or use"
                " ADCHAIN_IMAGE_BACKEND=preview"
            )
        if timeout_s <= 0 or http_attempts < 1 or no_image_attempts < 1 or initial_delay_s < 0 or max_delay_s < 0:
            raise ValueError(
                "GeminiGenerator needs timeout_s > 0, http_attempts >= 1, no_image_attempts >= 1 and delays >= 0"
            )
        self._api_key = api_key.strip()
        _MASK_KEYS.keys.add(self._api_key)
        self.model = model.removeprefix("models/")
        self.base_url = base_url or None
        self.timeout_s = timeout_s
        self.http_attempts = http_attempts
        self.initial_delay_s = initial_delay_s
        self.max_delay_s = max_delay_s
        self.no_image_attempts = no_image_attempts
        self._client: genai.Client | None = None

    def __repr__(self) -> str:
        # Written out so that the API key can never leak through a repr in a log or a traceback.
        return (
            f"GeminiGenerator(model={self.model!r}, base_url={self.base_url!r}, timeout_s={self.timeout_s!r},"
            f" http_attempts={self.http_attempts!r}, no_image_attempts={self.no_image_attempts!r})"
        )

    def _http_options(self) -> types.HttpOptions:
        """Transport settings in one place; pinned to v1beta, where ``imageConfig`` lives."""
        return types.HttpOptions(
            base_url=self.base_url,
            api_version="v1beta",
            timeout=round(self.timeout_s * 1000),  # the SDK wants milliseconds
            retry_options=types.HttpRetryOptions(
                attempts=self.http_attempts,
                initial_delay=self.initial_delay_s,
                max_delay=self.max_delay_s,
                exp_base=_EXP_BASE,
                jitter=self.initial_delay_s,  # tenacity adds uniform(0, jitter) seconds: scale it with the delays
                http_status_codes=list(HTTP_RETRY_STATUSES),
            ),
        )

    def _backoff_s(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1, 2, ...): the SDK's own formula, so both levels agree."""
        wait = self.initial_delay_s * _EXP_BASE ** (retry - 1) + random.uniform(0, self.initial_delay_s)
        return max(0.0, min(wait, self.max_delay_s))

    @property
    def client(self) -> genai.Client:
        """One client per process and transport settings, shared by every generator with the same ones (a run's
        steps in process, a step's candidates, and through the forkserver's preload every step process): building
        one costs ~70 ms of CPU (its TLS contexts), which every image step used to spend again."""
        if self._client is None:
            settings = (hashlib.sha256(self._api_key.encode()).hexdigest(), self.base_url, self.timeout_s,
                        self.http_attempts, self.initial_delay_s, self.max_delay_s)
            with _CLIENTS_LOCK:
                if settings not in _CLIENTS:
                    # vertexai=False: a GOOGLE_GENAI_USE_VERTEXAI in the environment must not reroute the calls.
                    _CLIENTS[settings] = genai.Client(api_key=self._api_key, vertexai=False, http_options=self._http_options())
                self._client = _CLIENTS[settings]
        return self._client

    def generate(self, request: ImageRequest, meter: Meter | None = None) -> GeneratedImage:
        parts = [types.Part.from_text(text=request.prompt.text)]
        parts += [types.Part.from_bytes(data=ref.png, mime_type="image/png") for ref in request.references]
        contents = [types.Content(role="user", parts=parts)]
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=request.aspect_ratio),
            should_return_http_response=True,  # the raw JSON; see the module docstring
        )
        billed: list[tuple[str, dict]] = []  # (model, tokens by modality) of every reply that reported usage
        started = time.perf_counter()
        for attempt in range(1, self.no_image_attempts + 1):
            call_started = time.perf_counter()
            model, tokens = self.model, {}
            try:
                reply = _parse_reply(self._call(contents, config))
                model = str(reply.get("modelVersion") or self.model)
                if reply.get("usageMetadata"):
                    tokens = tokens_by_modality(reply["usageMetadata"], output_modality="IMAGE")
                    billed.append((model, tokens))
                png = _as_png(_image_bytes(reply))
            except GenerationError as error:
                final = not (error.retryable and error.reason in RETRYABLE_REASONS)
                if meter is not None:
                    meter(backend=self.backend, model=model, kind="image", attempt=attempt, outcome=error.reason,
                          final=final and not error.retryable, usage=tokens, latency_s=time.perf_counter() - call_started)
                error.cost_usd, error.usage = self._billing(billed, attempt)
                if final or attempt == self.no_image_attempts:
                    if attempt > 1:
                        error.args = (f"{error} [after {attempt} calls]",)
                    raise
                delay = self._backoff_s(attempt)
                logger.info(
                    "Gemini call %d of %d brought no image (%s); asking again in %.2fs",
                    attempt, self.no_image_attempts, error.reason, delay,
                )
                time.sleep(delay)
                continue
            if meter is not None:
                meter(backend=self.backend, model=model, kind="image", attempt=attempt, usage=tokens,
                      latency_s=time.perf_counter() - call_started)
            cost_usd, usage = self._billing(billed, attempt)
            return GeneratedImage(
                png=png,
                backend=self.backend,
                model=model,
                latency_s=time.perf_counter() - started,  # what the caller waited, retries included
                cost_usd=cost_usd,
                usage=usage,
            )
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _call(self, contents: list[types.Content], config: types.GenerateContentConfig) -> str | None:
        """One ``generateContent`` call (the SDK retries it at HTTP level): the raw reply body, or a GenerationError."""
        try:
            response = self.client.models.generate_content(model=self.model, contents=contents, config=config)
        except errors.APIError as exc:
            error, cause = _http_error(exc, self.http_attempts, self.model), exc
        except Exception as exc:
            error, cause = _transport_error(exc, self.http_attempts, self.timeout_s), exc
            if error is None:
                raise
        else:
            return response.sdk_http_response.body if response.sdk_http_response else None
        # Raised out here, not in the except clause, so that an SDK error which (because a server or proxy
        # echoed it) holds the key can be left off the chain entirely, __context__ included.
        error.args = (str(error).replace(self._api_key, "[redacted]"),)
        if self._api_key in f"{cause!s} {cause!r} {cause.args!r}":
            raise error
        raise error from cause

    def _billing(self, billed: list[tuple[str, dict]], attempts: int) -> tuple[float, dict[str, int]]:
        """Cost (catalogue prices; an unknown price counts 0 here and null in the ledger) and token totals summed
        over every billed reply; ``attempts`` = calls made."""
        usage = {"prompt_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        cost = 0.0
        for model, tokens in billed:
            prompt = sum(tokens["input"].values())
            output = sum(tokens["output"].values()) + tokens["thinking"]
            usage["prompt_tokens"] += prompt
            usage["output_tokens"] += output
            usage["total_tokens"] += prompt + output
            cost += price(model, tokens) or price(self.model, tokens) or 0.0
        usage["attempts"] = attempts
        return cost, usage


def _http_error(exc: errors.APIError, attempts: int, model: str = "") -> GenerationError:
    """The SDK's HTTP error (its retries used up, or a status it does not retry) as a GenerationError; a 404 names
    the model and the variable that changes it (a retired model answers 404)."""
    code = exc.code
    retryable = code in HTTP_RETRY_STATUSES
    message = f"Gemini answered HTTP {code}" + (f" {exc.status}" if exc.status else "")
    if not retryable:
        message += " (not a transient status: not retried)"
    elif attempts > 1:
        message += f" on all {attempts} attempts"
    if exc.message:
        message += f": {str(exc.message).strip()[:500]}"
    hint = _retry_hint(exc)
    if hint:
        message += f"; the server asked to wait {hint} before retrying"
    if code == 404 and model:
        message += (f"; image model {model!r} is not available on this endpoint (retired?): set ADCHAIN_IMAGE_MODEL"
                    " to a current model (`adchain models` lists them, `adchain doctor` checks them)")
    return GenerationError(message, reason=f"HTTP_{code}" if code else "HTTP_ERROR", retryable=retryable)


def _retry_hint(exc: errors.APIError) -> str | None:
    """What the server asked for (Google's RetryInfo.retryDelay, or Retry-After), which the SDK ignores."""
    details = exc.details.get("error", exc.details) if isinstance(exc.details, dict) else {}
    for detail in (details.get("details") if isinstance(details, dict) else None) or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo") and detail.get("retryDelay"):
            return str(detail["retryDelay"])
    headers = getattr(exc.response, "headers", None)
    try:
        after = headers.get("retry-after") if headers is not None else None
    except AttributeError:
        after = None
    return f"{after}s" if after and str(after).isdigit() else after


def _transport_error(exc: Exception, attempts: int, timeout_s: float) -> GenerationError | None:
    """A transport error of httpx or httpx2 (whichever the SDK uses) as a GenerationError; None for anything else.

    Told apart by class name, since the two packages' classes are unrelated: the SDK retried timeouts and
    refused connections already; a dropped connection it did not, so that one is retried at reply level.
    """
    mro = type(exc).__mro__
    if not any(cls.__module__.split(".")[0] in ("httpx", "httpx2") for cls in mro):
        return None
    names = {cls.__name__ for cls in mro}
    tries = f"on all {attempts} attempts" if attempts > 1 else "(1 attempt)"
    detail = str(exc).strip()[:300] or type(exc).__name__
    if "TimeoutException" in names:
        message = f"Gemini timed out: no answer within {timeout_s:g}s {tries} ({type(exc).__name__})"
        return GenerationError(message, reason="TIMEOUT", retryable=True)
    if "ConnectError" in names:
        message = f"Gemini could not be reached {tries}: {detail}"
        return GenerationError(message, reason="CONNECTION_FAILED", retryable=True)
    if names & {"RemoteProtocolError", "ReadError", "WriteError", "CloseError"}:
        message = f"Gemini dropped the connection before a complete reply: {detail}"
        return GenerationError(message, reason="DISCONNECTED", retryable=True)
    message = f"Gemini could not be called: {type(exc).__name__}: {detail}"
    return GenerationError(message, reason="TRANSPORT_ERROR", retryable=False)


def _parse_reply(body: str | None) -> dict[str, Any]:
    try:
        reply = json.loads(body or "")
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        text = (body or "")[:200]
        message = f"Gemini sent a reply that is not a JSON object: {text!r}"
        raise GenerationError(message, reason="UNREADABLE_REPLY", retryable=True)
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
        message = f"Gemini sent a reply in an unexpected shape: {exc}"
        raise GenerationError(message, reason="UNREADABLE_REPLY", retryable=True) from exc
    raise _no_image_error(reply, candidate, parts)


def _no_image_error(reply: dict[str, Any], candidate: dict | None, parts: list[dict]) -> GenerationError:
    """Say why there is no image in the model's own words: a prompt block reason, or the finish reason.

    A prompt block is final whatever its reason; otherwise only the reasons in RETRYABLE_REASONS are retryable.
    """
    feedback = reply.get("promptFeedback") or {}
    blocked = bool(feedback.get("blockReason"))
    if blocked:
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
    return GenerationError(message, reason=reason, retryable=not blocked and reason in RETRYABLE_REASONS)


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
        raise GenerationError(message, reason="UNREADABLE_IMAGE", retryable=True) from exc
