"""Gemini text models through google-genai: one structured-output call, its reply metered like an image call.

:class:`TextModel` asks for JSON that a response schema describes and returns the reply's text; each billed
reply is reported to the caller's meter (the ledger). HTTP-level retries (408, 429, 5xx, timeouts) are the
SDK's and count as one call here.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Optional

from adchain_assets.plan.catalogue import tokens_by_modality
from adchain_assets.providers.images.gemini import HTTP_RETRY_STATUSES

TIMEOUT_S = 180.0
HTTP_ATTEMPTS = 3


class TextModelError(Exception):
    """No usable answer; ``bad_input`` when the set-up is at fault (no key) rather than the model or network."""

    def __init__(self, message: str, *, bad_input: bool = False):
        super().__init__(message)
        self.bad_input = bad_input


class TextModel:
    """One Gemini text model behind google-genai: ``ask(contents) -> (reply text, raw reply)``, each reply metered."""

    def __init__(self, *, api_key: Optional[str], model: str, base_url: Optional[str] = None,
                 timeout_s: float = TIMEOUT_S, http_attempts: int = HTTP_ATTEMPTS):
        if not api_key or not api_key.strip():
            raise TextModelError(
                "GEMINI_API_KEY is not set: adchain draft asks a Gemini text model; set it (and GEMINI_BASE_URL for"
                " a proxy or a local server)", bad_input=True)
        from google import genai
        from google.genai import types

        self._api_key = api_key.strip()
        self.model = model
        self._types = types
        self._client = genai.Client(api_key=self._api_key, vertexai=False, http_options=types.HttpOptions(
            base_url=base_url or None, api_version="v1beta", timeout=round(timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=http_attempts, initial_delay=1.0, max_delay=30.0,
                                                 http_status_codes=list(HTTP_RETRY_STATUSES)),
        ))

    def __repr__(self) -> str:  # never the key
        return f"TextModel(model={self.model!r})"

    def ask(self, turns: list[tuple[str, list]], schema: dict, meter: Callable[..., None], attempt: int, *,
            instructions: str) -> str:
        """``turns``: (role, parts) with parts as str or (bytes, mime type); ``instructions`` the system
        instruction. Returns the reply's text: JSON that ``schema`` describes."""
        from google.genai import errors

        types = self._types
        contents = [
            types.Content(role=role, parts=[
                types.Part.from_text(text=p) if isinstance(p, str) else types.Part.from_bytes(data=p[0], mime_type=p[1])
                for p in parts
            ])
            for role, parts in turns
        ]
        config = types.GenerateContentConfig(
            system_instruction=instructions,
            response_mime_type="application/json",
            response_schema=schema,
            should_return_http_response=True,  # the raw JSON: usageMetadata as the API spells it
        )
        started = time.perf_counter()
        try:
            response = self._client.models.generate_content(model=self.model, contents=contents, config=config)
        except errors.APIError as error:
            reason = f"HTTP_{error.code}"
            meter(backend="gemini", model=self.model, kind="text", attempt=attempt, outcome=reason,
                  latency_s=time.perf_counter() - started)
            message = (error.message or str(error)).replace(self._api_key, "[redacted]")
            raise TextModelError(f"{self.model}: Gemini answered HTTP {error.code} {error.status or ''}: {message}") from None
        except Exception as error:  # the transport (timeouts, refused connections) after the SDK's retries
            if type(error).__module__.split(".")[0] not in ("httpx", "httpcore", "ssl", "socket") and not isinstance(error, OSError):
                raise
            meter(backend="gemini", model=self.model, kind="text", attempt=attempt, outcome=type(error).__name__,
                  latency_s=time.perf_counter() - started)
            raise TextModelError(f"{self.model}: no answer from Gemini ({type(error).__name__}: {error})") from None
        latency = time.perf_counter() - started
        body = response.sdk_http_response.body if response.sdk_http_response else None
        try:
            reply = json.loads(body or "")
        except ValueError:
            meter(backend="gemini", model=self.model, kind="text", attempt=attempt, outcome="UNREADABLE", latency_s=latency)
            raise TextModelError(f"{self.model}: the reply is not JSON") from None
        model = str(reply.get("modelVersion") or self.model)
        usage = tokens_by_modality(reply.get("usageMetadata") or {}, output_modality="TEXT") if reply.get("usageMetadata") else {}
        feedback = reply.get("promptFeedback") or {}
        candidates = reply.get("candidates") or []
        if feedback.get("blockReason") or not candidates:
            reason = feedback.get("blockReason") or "NO_CANDIDATES"
            meter(backend="gemini", model=model, kind="text", attempt=attempt, outcome=reason, final=True,
                  usage=usage, latency_s=latency)
            raise TextModelError(f"{self.model}: the request was refused ({reason}"
                             f"{': ' + feedback['blockReasonMessage'] if feedback.get('blockReasonMessage') else ''})")
        candidate = candidates[0]
        finish = candidate.get("finishReason") or "STOP"
        text = "".join(p.get("text", "") for p in (candidate.get("content") or {}).get("parts") or [] if not p.get("thought"))
        if finish not in ("STOP", "MAX_TOKENS") or not text.strip():
            meter(backend="gemini", model=model, kind="text", attempt=attempt, outcome=finish if finish != "STOP" else "NO_TEXT",
                  final=finish != "STOP", usage=usage, latency_s=latency)
            raise TextModelError(f"{self.model}: no answer text (finish reason {finish}"
                             f"{': ' + candidate['finishMessage'] if candidate.get('finishMessage') else ''})")
        meter(backend="gemini", model=model, kind="text", attempt=attempt, usage=usage, latency_s=latency,
              detail={"finish_reason": finish})
        return text
