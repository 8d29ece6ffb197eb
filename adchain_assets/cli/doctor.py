"""``adchain doctor`` and ``adchain models``: check a set-up before spending money on it, and show the catalogue.

``doctor`` prints one line per check — ``ok``, ``FAIL`` (with the fix) or ``skip`` (with why) — and returns 0 when
no check failed, 1 otherwise:

* the settings parse; for each paid backend in use (``gemini`` images, ``veo`` clips): the credentials are present
  (``GEMINI_API_KEY``; on the Vertex route ``GOOGLE_CLOUD_PROJECT`` and Application Default Credentials), the
  endpoint answers, each configured model exists *on that endpoint* (google-genai's public ``models.get``: a retired
  model answers 404), the catalogue knows the model and its price, and its announced shutdown date has not passed
  (a date within 60 days is shown on an ``ok`` line);
* the data folder (and ``ADCHAIN_STORAGE_URL`` when set) and the Dagster instance folder (``DAGSTER_HOME``) are
  writable: a probe file is written atomically and removed.

What it cannot do: prove a model will accept this project's requests (quota, billing, safety settings), or check
prices against Google's live pricing page (the catalogue's figures carry their sources and dates instead).
Every call it makes is free (``models.get``); it never starts a generation.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TextIO

from adchain_assets.plan import catalogue
from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL
from adchain_assets.settings import Settings, SettingsError
from adchain_assets.store.files import write_atomically

OK, FAIL, SKIP = "ok", "FAIL", "skip"
WARN_DAYS = 60
TIMEOUT_S = 15.0
IMAGE_TOKENS = 1120  # output tokens of a 1K image (Gemini 3.x image models), for the price line


@dataclass(frozen=True)
class Check:
    status: str  # ok | FAIL | skip
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.name}: {self.detail}"
        return f"{text} — fix: {self.fix}" if self.status == FAIL and self.fix else text


def doctor(out: TextIO = sys.stdout, environ: Optional[dict] = None, today: Optional[dt.date] = None) -> int:
    """Run every check, print one line each, return 0 (all passed) or 1 (a check failed)."""
    failed = False
    for check in run_checks(environ if environ is not None else dict(os.environ), today=today):
        print(check.line(), file=out, flush=True)
        failed = failed or check.status == FAIL
    print("doctor: " + ("a check failed" if failed else "all checks passed"), file=out)
    return 1 if failed else 0


def run_checks(environ: dict, today: Optional[dt.date] = None):
    """The checks, in order, as :class:`Check`s (a generator: each is made when it is reached)."""
    try:
        settings = Settings.from_env(environ)
    except SettingsError as error:
        yield Check(FAIL, "settings", str(error), "correct the variable it names")
        return
    yield Check(OK, "settings", f"images {settings.image_backend}, clips {settings.video_backend}"
                + (f" on the {settings.video_route} route" if settings.video_backend == "veo" else ""))
    yield from _gemini_checks(settings, environ, today)
    yield from _vertex_checks(settings, environ, today)
    yield from _folder_checks(settings, environ)


# --- models on the Gemini API ---------------------------------------------------------------------------------


def _gemini_models(settings: Settings) -> list[tuple[str, str, str]]:
    """(kind, model, variable) for every configured model served by the Gemini API."""
    models = []
    if settings.image_backend == "gemini":
        models.append(("image", settings.image_model, "ADCHAIN_IMAGE_MODEL"))
    if settings.video_backend == "veo" and settings.video_route == "gemini":
        models.append(("video", settings.video_model, "ADCHAIN_VIDEO_MODEL"))
    return models


def _gemini_checks(settings: Settings, environ: dict, today: Optional[dt.date]):
    models = _gemini_models(settings)
    if not models:
        yield Check(SKIP, "Gemini API", "not used (images and clips need no Gemini API key with these backends)")
        return
    key = settings.gemini_api_key
    base_url = settings.gemini_base_url or None
    endpoint = base_url or "https://generativelanguage.googleapis.com"
    if not key:
        yield Check(FAIL, "API key", "GEMINI_API_KEY is not set",
                    "export GEMINI_API_KEY=... (Google AI Studio), or use the preview backends")
        for kind, model, variable in models:
            yield Check(SKIP, f"{kind} model {model}", "not asked: no key")
            yield from _catalogue_checks(kind, model, variable, "gemini-api", today)
        return
    yield Check(OK, "API key", f"GEMINI_API_KEY is set ({len(key)} characters)")
    from google import genai
    from google.genai import errors, types

    client = genai.Client(api_key=key, vertexai=False, http_options=types.HttpOptions(
        base_url=base_url, api_version="v1beta", timeout=round(TIMEOUT_S * 1000),
        retry_options=types.HttpRetryOptions(attempts=1)))
    reached = None
    for kind, model, variable in models:
        outcome = _get_model(lambda: client.models.get(model=model), errors)
        if reached is None:
            reached = outcome[0] != "unreachable"
            if reached:
                yield Check(OK, "endpoint", f"{endpoint} answers")
            else:
                yield Check(FAIL, "endpoint", f"{endpoint} cannot be reached: {_masked(outcome[1], key)}",
                            "check GEMINI_BASE_URL (unset it for Google's endpoint) and the network/proxy")
        yield from _model_check(kind, model, variable, outcome, endpoint, key, reached)
        yield from _catalogue_checks(kind, model, variable, "gemini-api", today)


def _get_model(call: Callable, errors) -> tuple[str, str]:
    """("found", name) | ("missing", message) | ("refused", message) | ("unreachable", message)."""
    try:
        found = call()
    except errors.APIError as exc:
        if exc.code == 404:
            return "missing", str(exc.message or "not found")
        return "refused", f"HTTP {exc.code} {exc.status or ''}: {exc.message or ''}".strip()
    except Exception as exc:  # transport errors of httpx2; a doctor reports, it does not crash
        return "unreachable", f"{type(exc).__name__}: {str(exc)[:200]}"
    return "found", str(getattr(found, "name", "") or "")


def _model_check(kind, model, variable, outcome, endpoint, key, reached):
    state, detail = outcome
    detail = _masked(detail, key)
    name = f"{kind} model {model}"
    if not reached:
        yield Check(SKIP, name, "not asked: the endpoint cannot be reached")
    elif state == "found":
        yield Check(OK, name, f"exists on {endpoint} ({detail or 'models.get answered'})")
    elif state == "missing":
        suggestion = catalogue.replacement(model) or (DEFAULT_IMAGE_MODEL if kind == "image" else DEFAULT_VIDEO_MODEL)
        if suggestion == model:  # the default itself is missing here: another endpoint or route serves it
            fix = (f"this endpoint does not serve {model}: set {variable} to a model it serves (`adchain models`)"
                   + (", or ADCHAIN_VIDEO_ROUTE=vertex" if kind == "video" else ""))
        else:
            fix = f"export {variable}={suggestion} (`adchain models` lists the catalogue)"
        yield Check(FAIL, name, f"not found on {endpoint} (HTTP 404: {detail}); retired, or a typo", fix)
    else:
        yield Check(FAIL, name, f"the endpoint refused models.get: {detail}",
                    "check the key (GEMINI_API_KEY) and that it may use this model")


def _catalogue_checks(kind: str, model: str, variable: str, route: str, today: Optional[dt.date]):
    entry = catalogue.model_entry(model)
    name = f"{kind} model {model}"
    if entry is None:
        yield Check(FAIL, f"{name} price", "not in the catalogue: its calls would be recorded with an unknown cost",
                    f"add it to adchain_assets/catalogue.yaml with its prices and source, or set {variable} to a"
                    " catalogued model")
        return
    usage = ({"seconds": 1, "resolution": "720p"} if kind == "video"
             else {"output": {"IMAGE": IMAGE_TOKENS}, "input": {"TEXT": 0}})
    rate = catalogue.price(model, usage)
    if rate is None:
        yield Check(FAIL, f"{name} price", "the catalogue has no price for it",
                    "add its prices (with their source) to adchain_assets/catalogue.yaml")
    else:
        unit = "per second at 720p" if kind == "video" else f"per 1K image ({IMAGE_TOKENS} output tokens), prompt extra"
        yield Check(OK, f"{name} price", f"${rate:g} {unit} (catalogue)")
    today = today or dt.date.today()
    when = catalogue.shutdown_date(model)
    routes = entry.get("routes") or []
    if catalogue.is_shut_down(model, today):
        yield Check(FAIL, f"{name} lifecycle", f"shut down{f' on {when.isoformat()}' if when else ''} (catalogue)",
                    f"export {variable}={catalogue.replacement(model) or 'a current model'}")
    elif when and (when - today).days <= WARN_DAYS:
        yield Check(OK, f"{name} lifecycle", f"WARNING: shutdown announced for {when.isoformat()}, in"
                    f" {(when - today).days} days; plan to move to {catalogue.replacement(model) or 'a newer model'}")
    else:
        note = "" if route in routes else f"; note: the catalogue lists it on {', '.join(routes)}, not {route}"
        yield Check(OK, f"{name} lifecycle", f"{entry.get('status', '?')}, no shutdown announced{note}")


# --- Veo on Vertex AI -----------------------------------------------------------------------------------------


def _vertex_checks(settings: Settings, environ: dict, today: Optional[dt.date]):
    if not (settings.video_backend == "veo" and settings.video_route == "vertex"):
        return
    variable = "ADCHAIN_VIDEO_MODEL"
    if not settings.cloud_project:
        yield Check(FAIL, "Vertex project", "GOOGLE_CLOUD_PROJECT is not set",
                    "export GOOGLE_CLOUD_PROJECT=<project id> (and GOOGLE_CLOUD_LOCATION, default us-central1)")
        yield from _catalogue_checks("video", settings.video_model, variable, "vertex", today)
        return
    yield Check(OK, "Vertex project", f"{settings.cloud_project} in {settings.cloud_location}")
    try:
        import google.auth

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except Exception as exc:
        yield Check(FAIL, "Vertex credentials", f"no Application Default Credentials: {str(exc)[:200]}",
                    "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS")
        yield from _catalogue_checks("video", settings.video_model, variable, "vertex", today)
        return
    yield Check(OK, "Vertex credentials", f"found ({type(credentials).__name__})")
    from google import genai
    from google.genai import errors, types

    client = genai.Client(vertexai=True, project=settings.cloud_project, location=settings.cloud_location,
                          credentials=credentials, http_options=types.HttpOptions(
                              base_url=settings.vertex_base_url or None, timeout=round(TIMEOUT_S * 1000),
                              retry_options=types.HttpRetryOptions(attempts=1)))
    endpoint = settings.vertex_base_url or f"https://{settings.cloud_location}-aiplatform.googleapis.com"
    outcome = _get_model(lambda: client.models.get(model=settings.video_model), errors)
    reached = outcome[0] != "unreachable"
    yield (Check(OK, "Vertex endpoint", f"{endpoint} answers") if reached else
           Check(FAIL, "Vertex endpoint", f"{endpoint} cannot be reached: {outcome[1]}",
                 "check GOOGLE_CLOUD_LOCATION, ADCHAIN_VERTEX_BASE_URL and the network"))
    yield from _model_check("video", settings.video_model, variable, outcome, endpoint, "", reached)
    yield from _catalogue_checks("video", settings.video_model, variable, "vertex", today)


# --- folders --------------------------------------------------------------------------------------------------


def _folder_checks(settings: Settings, environ: dict):
    yield _writable("data folder", settings.data_dir, "ADCHAIN_DATA_DIR")
    if settings.storage and settings.storage != settings.data_dir:
        yield _writable("storage", settings.storage, "ADCHAIN_STORAGE_URL")
    home = (environ.get("DAGSTER_HOME") or "").strip()
    if not home:
        yield Check(FAIL, "Dagster instance", "DAGSTER_HOME is not set",
                    "export DAGSTER_HOME=<folder> (the adchain command and the Makefile use .dagster_home/)")
    else:
        yield _writable("Dagster instance", home, "DAGSTER_HOME")


def _writable(name: str, where: str, variable: str) -> Check:
    """Write a probe file atomically into ``where`` (made if missing) and remove it."""
    from upath import UPath

    probe = UPath(where) / f".adchain-doctor-{uuid.uuid4().hex[:8]}"
    try:
        write_atomically(probe, b"adchain doctor\n")
        probe.unlink()
    except Exception as exc:
        return Check(FAIL, name, f"{where} is not writable: {type(exc).__name__}: {str(exc)[:200]}",
                     f"fix its permissions, or point {variable} elsewhere")
    where_shown = str(Path(where).resolve()) if "://" not in where else where
    return Check(OK, name, f"{where_shown} is writable")


def _masked(text: str, key: str) -> str:
    return text.replace(key, "[redacted]") if key else text


# --- adchain models ------------------------------------------------------------------------------------------


def models(out: TextIO = sys.stdout, environ: Optional[dict] = None) -> int:
    """Print the catalogue, marking the models this set-up uses and how to change them."""
    settings = Settings.from_env(environ)
    print(f"image model: {settings.image_model} (default {DEFAULT_IMAGE_MODEL}; change with ADCHAIN_IMAGE_MODEL;"
          f" used when ADCHAIN_IMAGE_BACKEND=gemini, now {settings.image_backend})", file=out)
    print(f"video model: {settings.video_model} (default {DEFAULT_VIDEO_MODEL}; change with ADCHAIN_VIDEO_MODEL;"
          f" used when ADCHAIN_VIDEO_BACKEND=veo, now {settings.video_backend}; route {settings.video_route},"
          " ADCHAIN_VIDEO_ROUTE=gemini|vertex)", file=out)
    print("", file=out)
    configured = {settings.image_model: "image model", settings.video_model: "video model"}
    print(catalogue.describe(configured), file=out)
    return 0
