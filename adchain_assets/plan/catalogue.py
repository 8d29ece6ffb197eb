"""The model catalogue (``catalogue.yaml``): what each model makes, on which route, what it accepts, what its
calls cost and when it is shut down, each figure with its source and the date it was read.

Prices are read from the data file, never from code, so a price change is a one-line edit with its source.
:func:`price` turns a call's usage (tokens by modality, or seconds by resolution) into USD, or ``None`` when the
model or the price it needs is not in the catalogue: an unknown price is never silently $0.
:func:`nominal_usage` is what one image call is assumed to use before any was seen (estimates only), and
:func:`clip_seconds` the length a video model bills for a requested clip length.
:func:`problems_for` lists what a brief asks of the chosen models that they cannot make (an aspect ratio, a clip
length, a resolution), as ``BriefProblem``s, before any call. :func:`describe` renders the catalogue for
``adchain models``.

What it cannot do: know about a model Google added or retired after the file's last review (``adchain doctor``
asks the endpoint itself); a model missing from the file is not a brief problem (nothing is known to check).
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Optional

import yaml

from adchain_assets.brief.model import BriefProblem
from adchain_assets.plan.references import ReferenceLimits

Usage = Mapping[str, Any]


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    text = resources.files("adchain_assets.plan").joinpath("catalogue.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def default_model(kind: str) -> str:
    """The catalogue's default model for ``kind`` (``image``, ``video`` or ``text``)."""
    return str(_document()["defaults"][kind])


DEFAULT_IMAGE_MODEL = default_model("image")
DEFAULT_VIDEO_MODEL = default_model("video")
DEFAULT_TEXT_MODEL = default_model("text")


def catalogue() -> dict[str, dict[str, Any]]:
    """``{model id: entry}`` from the packaged ``catalogue.yaml``."""
    return dict(_document()["models"])


def sources() -> dict[str, dict[str, Any]]:
    """``{source key: {url, read, note}}``: where the catalogue's figures come from."""
    return dict(_document().get("sources") or {})


def model_entry(model: str) -> Optional[dict[str, Any]]:
    return catalogue().get(model.removeprefix("models/"))


def tokens_by_modality(meta: Mapping[str, Any], *, output_modality: str = "IMAGE") -> dict[str, Any]:
    """A Gemini ``usageMetadata`` as ``{"input": {MODALITY: n}, "output": {MODALITY: n}, "thinking": n}``.

    Replies that do not break their candidates' tokens down by modality are counted as ``output_modality``
    (what the call asked for); thinking tokens are kept apart, since they are billed at the text rate.
    """

    def by_modality(details, total: int, default: str) -> dict[str, int]:
        counted: dict[str, int] = {}
        for item in details or []:
            modality = str(item.get("modality") or "TEXT").upper()
            counted[modality] = counted.get(modality, 0) + int(item.get("tokenCount") or 0)
        rest = total - sum(counted.values())
        if rest > 0:
            counted[default] = counted.get(default, 0) + rest
        return counted

    prompt = int(meta.get("promptTokenCount") or 0)
    output = int(meta.get("candidatesTokenCount") or 0)
    return {
        "input": by_modality(meta.get("promptTokensDetails"), prompt, "TEXT"),
        "output": by_modality(meta.get("candidatesTokensDetails"), output, output_modality),
        "thinking": int(meta.get("thoughtsTokenCount") or 0),
    }


def price(model: str, usage: Usage) -> Optional[float]:
    """USD for one call of ``model`` with ``usage``; None when the catalogue has no price for it."""
    entry = model_entry(model)
    prices = (entry or {}).get("prices") or {}
    if "seconds" in usage:
        per_second = prices.get("per_second") or {}
        rate = per_second.get(str(usage.get("resolution") or "720p"))
        return None if rate is None else round(float(usage["seconds"]) * float(rate), 6)
    if not prices:
        return None
    total = 0.0
    rates = {"input": "input_per_mtok", "thinking": "thinking_per_mtok"}
    inputs = sum((usage.get("input") or {}).values())
    thinking = int(usage.get("thinking") or 0)
    for name, count in (("input", inputs), ("thinking", thinking)):
        if count:
            if rates[name] not in prices:
                return None
            total += count * float(prices[rates[name]])
    for modality, count in (usage.get("output") or {}).items():
        if not count:
            continue
        rate = prices.get(f"output_{modality.lower()}_per_mtok")
        if rate is None:
            return None
        total += count * float(rate)
    return round(total / 1_000_000, 8)


def reference_limits(model: str) -> Optional[ReferenceLimits]:
    """The most reference images ``model`` takes (total, characters, objects), if the catalogue says."""
    entry = (model_entry(model) or {}).get("references")
    if not entry:
        return None
    return ReferenceLimits(int(entry["total"]), int(entry["characters"]), int(entry["objects"]))


def nominal_usage(model: str, *, prompt_chars: int, reference_images: int) -> Optional[dict[str, Any]]:
    """The usage one call of image ``model`` is assumed to have (in :func:`price`'s shape) for a prompt of
    ``prompt_chars`` characters showing ``reference_images`` images: the catalogue's ``nominal`` figures (output
    image tokens per image, input tokens per reference image, characters per text token), or None when the
    catalogue has none for the model. Thinking tokens are not assumed (none are known before a call)."""
    nominal = (model_entry(model) or {}).get("nominal") or {}
    if "output_image_tokens" not in nominal:
        return None
    text = -(-prompt_chars // int(nominal.get("text_chars_per_token") or 4))  # rounded up
    inputs = {"TEXT": text, "IMAGE": reference_images * int(nominal.get("input_image_tokens") or 0)}
    return {"input": inputs, "output": {"IMAGE": int(nominal["output_image_tokens"])}, "thinking": 0}


def clip_seconds(model: str, duration_s: float) -> float:
    """The seconds ``model`` makes (and bills) for a clip of ``duration_s``: the shortest catalogued length at
    least that long (the longest when none is), or ``duration_s`` itself when the catalogue lists no lengths."""
    lengths = sorted(float(s) for s in (model_entry(model) or {}).get("durations_s") or [])
    if not lengths:
        return float(duration_s)
    return next((s for s in lengths if s >= duration_s), lengths[-1])


def shutdown_date(model: str) -> Optional[_dt.date]:
    """The model's announced (earliest) shutdown date, if the catalogue has one."""
    value = (model_entry(model) or {}).get("shutdown")
    if isinstance(value, _dt.date):
        return value
    return _dt.date.fromisoformat(str(value)) if value else None


def is_shut_down(model: str, today: Optional[_dt.date] = None) -> bool:
    entry = model_entry(model) or {}
    when = shutdown_date(model)
    return entry.get("status") == "shut-down" or (when is not None and when <= (today or _dt.date.today()))


def replacement(model: str) -> Optional[str]:
    return (model_entry(model) or {}).get("replacement")


def problems_for(brief, image_model: Optional[str], video_model: Optional[str], *, file: str = "") -> list:
    """What ``brief`` asks that the chosen models cannot make, as ``BriefProblem``s (file, field, reason).

    ``image_model`` / ``video_model`` are the model ids of the backends in use, or None for a backend that is not
    a catalogued model (``preview`` makes any shape). A model the catalogue does not know yields no problem here,
    except in ``sheets`` mode, which needs the model's reference-image limits. Checked: the aspect ratio (image and
    video), every placement's shape (image only: a shape the video model does not make is cropped), every scene's
    ``duration_s`` (the clip lengths the video model makes; it does not round),
    ``video.resolution`` and the clip lengths that resolution allows.
    """
    problems: list = []
    image = model_entry(image_model) if image_model else None
    if image_model and brief.reference_mode == "sheets" and reference_limits(image_model) is None:
        problems.append(BriefProblem(file, "reference_mode", (
            f"sheets: image model {image_model} has no reference-image limits in the catalogue, so how many sheets"
            " it can be shown is unknown (use another ADCHAIN_IMAGE_MODEL, or reference_mode chain or anchored)")))
    if image and image.get("aspect_ratios") and brief.aspect_ratio not in image["aspect_ratios"]:
        problems.append(BriefProblem(file, "aspect_ratio", (
            f"{brief.aspect_ratio!r}: image model {image_model} makes {', '.join(image['aspect_ratios'])}"
            " (change the brief, or ADCHAIN_IMAGE_MODEL)")))
    for index, shape in enumerate(getattr(brief, "placements", None) or []):
        if image and image.get("aspect_ratios") and shape not in image["aspect_ratios"]:
            problems.append(BriefProblem(file, f"placements[{index}]", (
                f"{shape!r}: image model {image_model} makes {', '.join(image['aspect_ratios'])}"
                " (change the brief, or ADCHAIN_IMAGE_MODEL)")))
    video = model_entry(video_model) if video_model else None
    if not video:
        return problems
    fix = "change the brief, or ADCHAIN_VIDEO_MODEL / ADCHAIN_VIDEO_BACKEND"
    ratios = video.get("aspect_ratios") or []
    if ratios and brief.aspect_ratio not in ratios:
        problems.append(BriefProblem(file, "aspect_ratio", (
            f"{brief.aspect_ratio!r}: video model {video_model} makes {' or '.join(ratios)} clips only ({fix})")))
    resolutions = video.get("resolutions") or []
    resolution = getattr(getattr(brief, "video", None), "resolution", None)
    if resolution and resolutions and resolution not in resolutions:
        problems.append(BriefProblem(file, "video.resolution", (
            f"{resolution!r}: video model {video_model} makes {', '.join(resolutions)} ({fix})")))
    lengths = [float(s) for s in video.get("durations_s") or []]
    long_only = video.get("long_resolutions_need_s")
    for index, scene in enumerate(brief.scenes):
        seconds = float(scene.duration_s)
        if lengths and seconds not in lengths:
            problems.append(BriefProblem(file, f"scenes[{index}].duration_s", (
                f"{seconds:g} s: video model {video_model} makes {', '.join(f'{s:g}' for s in lengths)} s clips"
                f" ({fix})")))
        elif long_only and resolution and resolution != "720p" and seconds != float(long_only):
            problems.append(BriefProblem(file, f"scenes[{index}].duration_s", (
                f"{seconds:g} s: video model {video_model} makes {resolution} clips of {long_only:g} s only"
                f" (use duration_s: {long_only:g}, or video.resolution: 720p)")))
    return problems


def _money(value: float) -> str:
    return f"${value:g}"


def describe(configured: Optional[Mapping[str, str]] = None, today: Optional[_dt.date] = None) -> str:
    """The catalogue as text for ``adchain models``: one block per model, then the sources with their dates.

    ``configured`` maps a model id to a label ("image model", "video model") to mark the ones in use.
    """
    configured = dict(configured or {})
    lines: list[str] = []
    for model, entry in catalogue().items():
        when = shutdown_date(model)
        state = entry.get("status", "?")
        if when:
            state += f", shutdown {'on' if is_shut_down(model, today) else 'announced for'} {when.isoformat()}"
            if entry.get("replacement"):
                state += f" (use {entry['replacement']})"
        mark = f"  <- {configured[model]}" if model in configured else ""
        lines.append(f"{model}  [{entry.get('makes', '?')}; routes {', '.join(entry.get('routes') or [])}; {state}]{mark}")
        accepts = []
        if entry.get("aspect_ratios"):
            accepts.append("aspect ratios " + " ".join(entry["aspect_ratios"]))
        if entry.get("durations_s"):
            accepts.append("clips " + "/".join(f"{s:g}" for s in entry["durations_s"]) + " s")
        if entry.get("resolutions"):
            accepts.append("resolutions " + " ".join(entry["resolutions"]))
        if accepts:
            lines.append("    makes: " + "; ".join(accepts))
        prices = entry.get("prices") or {}
        if "per_second" in prices:
            shown = ", ".join(f"{res} {_money(rate)}/s" for res, rate in prices["per_second"].items())
        else:
            shown = ", ".join(f"{name.removesuffix('_per_mtok').replace('_', ' ')} {_money(rate)}/Mtok"
                              for name, rate in prices.items())
        lines.append("    price: " + (shown or "unknown"))
        nominal = entry.get("nominal") or {}
        if nominal.get("output_image_tokens"):
            one = price(model, {"output": {"IMAGE": nominal["output_image_tokens"]}})
            lines.append(f"    estimates assume: {nominal['output_image_tokens']} image tokens an image"
                         + (f" (${one:.3f})" if one is not None else "") + " until the ledger has seen a call")
        cited = entry.get("sources") or {}
        if cited:
            lines.append("    sources: " + ", ".join(f"{what}: {key}" for what, key in cited.items()))
    lines.append("")
    lines.append("sources:")
    for key, source in sources().items():
        lines.append(f"  {key}: {source.get('url')} (read {source.get('read')})")
    return "\n".join(lines)
