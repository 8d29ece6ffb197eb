"""The model catalogue (``catalogue.yaml``): what each model makes and what its calls cost.

Prices are read from the data file, never from code, so a price change is a one-line edit with its source.
:func:`price` turns a call's usage (tokens by modality, or seconds by resolution) into USD, or ``None`` when the
model or the price it needs is not in the catalogue: an unknown price is never silently $0.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Optional

import yaml

Usage = Mapping[str, Any]


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, Any]]:
    """``{model id: entry}`` from the packaged ``catalogue.yaml``."""
    text = resources.files("adchain_assets").joinpath("catalogue.yaml").read_text(encoding="utf-8")
    return dict(yaml.safe_load(text)["models"])


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
