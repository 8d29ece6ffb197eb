"""The specificity lint: warnings about briefs that are valid but too vague to keep a subject the same.

The seed's post-mortem: with the text "woman in her 30s wearing ivory blouse" the image model drew a different woman
in every scene, because the text could be anyone and the model follows the text over the reference image. The fix
was one detailed description per subject (age, hair, eyes, a distinguishing mark; for a product its shape,
material, colours and label), repeated verbatim. The brief format repeats the description; this lint asks for the
detail, and for scene texts that do not contradict it.

What it checks, per subject description (``subjects[i].description``):

* a character without an age (a number or a decade: "32 years old", "in her 30s"), hair (with a colour, or
  bald/shaved; fur for an animal), an eye colour, or a distinguishing mark (beauty mark, mole, scar, freckles,
  tattoo, glasses, a coat patch, ...);
* a product without a shape, a material, a colour, or a label/marking (printed or engraved text, a logo, a quoted
  name);
* a description of fewer than :data:`MIN_DESCRIPTION_WORDS` words: too short to pin one identity;

and per scene text (``scenes[k].reference|start|end|continuity``) naming a subject, a colour that contradicts the
description: another hair or eye colour for a character, another colour for a product's object ("a blue bottle"
when the bottle is described pink and rose-gold).

What it cannot do: it reads English words, not meaning. It knows a fixed vocabulary of colours, materials, shapes
and marks (:data:`COLOURS`, ...); a description in another language, or one using words it does not know, gets
warnings a human can overrule (the warnings never stop a run unless ``adchain validate --strict`` is asked for). A
contradiction is only seen when the colour stands right before the thing ("blonde hair", "a blue glass bottle");
"her hair, now blonde" is missed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from adchain_assets.brief.model import Brief, LoadedBrief, Subject

MIN_DESCRIPTION_WORDS = 12

# Colour words and the families they belong to: two colours contradict when their families do not meet.
_FAMILIES: dict[str, tuple[str, ...]] = {
    "black": ("black",), "jet": ("black",), "raven": ("black",), "ebony": ("black",), "onyx": ("black",),
    "charcoal": ("black", "grey"),
    "white": ("white",), "ivory": ("white", "cream"), "cream": ("cream", "white"), "pearl": ("white",),
    "snow": ("white",), "platinum": ("blonde", "white", "silver"),
    "grey": ("grey",), "gray": ("grey",), "silver": ("silver", "grey"), "ash": ("grey", "blonde"),
    "salt-and-pepper": ("grey", "black"), "steel": ("grey", "blue"), "slate": ("grey", "blue"),
    "brown": ("brown",), "chestnut": ("brown", "red"), "brunette": ("brown",), "chocolate": ("brown",),
    "mahogany": ("brown", "red"), "hazel": ("brown", "green"), "caramel": ("brown", "blonde"),
    "mocha": ("brown",), "espresso": ("brown", "black"), "tan": ("brown",), "beige": ("brown", "cream"),
    "bronze": ("brown", "gold"), "walnut": ("brown",), "cognac": ("brown", "amber"), "taupe": ("brown", "grey"),
    "red": ("red",), "auburn": ("red", "brown"), "ginger": ("red",), "copper": ("red", "orange"),
    "titian": ("red",), "crimson": ("red",), "scarlet": ("red",), "burgundy": ("red", "purple"),
    "ruby": ("red",), "cherry": ("red",), "wine": ("red", "purple"), "strawberry": ("red", "blonde"),
    "blonde": ("blonde",), "blond": ("blonde",), "golden": ("blonde", "gold"), "flaxen": ("blonde",),
    "honey": ("blonde", "brown", "amber"), "sandy": ("blonde", "brown"),
    "gold": ("gold",), "rose-gold": ("gold", "pink"), "brass": ("gold",), "champagne": ("gold", "cream"),
    "yellow": ("yellow",), "lemon": ("yellow",), "mustard": ("yellow",),
    "orange": ("orange",), "amber": ("amber", "orange", "brown"), "peach": ("orange", "pink"),
    "coral": ("orange", "pink"), "apricot": ("orange",), "terracotta": ("orange", "red"),
    "pink": ("pink",), "blush": ("pink",), "rose": ("pink",), "magenta": ("pink", "purple"),
    "fuchsia": ("pink", "purple"), "salmon": ("pink", "orange"),
    "purple": ("purple",), "violet": ("purple", "blue"), "lavender": ("purple",), "lilac": ("purple",),
    "plum": ("purple",), "mauve": ("purple", "pink"),
    "blue": ("blue",), "navy": ("blue",), "azure": ("blue",), "sapphire": ("blue",), "cobalt": ("blue",),
    "teal": ("blue", "green"), "turquoise": ("blue", "green"), "aqua": ("blue", "green"), "cyan": ("blue",),
    "indigo": ("blue", "purple"), "ice": ("blue", "grey"), "cerulean": ("blue",),
    "green": ("green",), "emerald": ("green",), "jade": ("green",), "olive": ("green", "brown"),
    "sage": ("green",), "mint": ("green",), "forest": ("green",), "lime": ("green",), "khaki": ("green", "brown"),
    "clear": ("clear",), "transparent": ("clear",), "frosted": ("clear", "white"),
}
COLOURS = frozenset(_FAMILIES)
# Shades that say how, not which: never a contradiction on their own, never enough as a hair or eye colour.
_SHADES = frozenset({"dark", "light", "pale", "deep", "bright", "soft", "warm", "cool", "rich", "muted", "dusty"})

_AGE = re.compile(
    r"\b(?:\d{1,3}[\s-]*(?:years?[\s-]*old|yrs?\b|y/?o\b|-year-old)"
    r"|aged?\s+\d{1,3}"
    r"|(?:early|mid|late|mid-)?[\s-]*(?:[1-9]0s|[1-9]0's)"
    r"|(?:early|mid|late)?[\s-]*(?:teens|twenties|thirties|forties|fifties|sixties|seventies|eighties|nineties)"
    r"|(?:^|,\s*)\d{1,3}\s*(?:,|$))",
    re.IGNORECASE,
)
_HAIR = re.compile(r"\b(?:hair|haired|fur|furred|mane|bald|shaved head|shaven head|buzz[\s-]?cut|crew[\s-]?cut|dreadlocks|locs|afro|braids|cornrows)\b", re.IGNORECASE)
_HAIR_WITHOUT_COLOUR = re.compile(r"\b(?:bald|shaved head|shaven head)\b", re.IGNORECASE)
_EYES = re.compile(r"\b(?:eyes|eyed|irises)\b", re.IGNORECASE)
_MARKS = re.compile(
    r"\b(?:beauty[\s-]?(?:mark|spot)|mole|scar(?:red)?|freckle[sd]?|tattoo(?:ed|s)?|birthmark|dimpled?|dimples"
    r"|piercings?|pierced|nose[\s-]?ring|glasses|spectacles|beard(?:ed)?|moustache|mustache|stubble|goatee"
    r"|gap[\s-]?toothed|gap between (?:his|her|their) (?:front )?teeth|widow'?s peak|cleft chin|heterochromia"
    r"|braces|vitiligo|port[\s-]?wine stain|sideburns|eyebrow slit|hooked nose|aquiline nose|crooked nose"
    r"|broken nose|missing tooth|gold tooth|earrings?|patch(?:es)?|spots|spotted|markings|collar)\b",
    re.IGNORECASE,
)
_SHAPE = re.compile(
    r"(?:-shaped\b|\b(?:shape|rectangular|square|round(?:ed)?|cylindrical|cylinder|oval|faceted|slim|slender|tall"
    r"|squat|spherical|sphere|cube|cubic|flask|teardrop|hexagonal|octagonal|tapered|tapering|curved|domed?|pyramid"
    r"|triangular|conical|cone|flat|bevell?ed|angular|boxy|circular|elongated|bulbous|hourglass|rectangle"
    r"|wedge|disc|disk|ring|tubular|tube)\b)",
    re.IGNORECASE,
)
_MATERIAL = re.compile(
    r"\b(?:glass|crystal|plastic|metal(?:lic)?|alumin(?:i)?um|steel|stainless|gold|silver|brass|copper|bronze|chrome"
    r"|ceramic|porcelain|stoneware|wood(?:en)?|oak|walnut|bamboo|leather|suede|paper|cardboard|carton|cotton|silk"
    r"|linen|wool|fabric|canvas|denim|rubber|silicone|acrylic|marble|stone|concrete|resin|titanium|enamel|lacquer(?:ed)?"
    r"|velvet|felt|cork|tin|iron|pewter|nylon|polyester|mesh|foil|vinyl|polycarbonate)\b",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"(?:\"[^\"]+\"|“[^”]+”|«[^»]+»|\b(?:labell?ed|labels?|logo|logos|engraved|embossed|debossed|etched|printed|print"
    r"|lettering|letters|wordmark|monogram(?:med)?|inscription|inscribed|reads|reading|stamped|sticker|badge|emblem"
    r"|insignia|brand(?:ed)?|branding|text|writing|written|marking|markings|marked)\b)",
    re.IGNORECASE,
)
# What hair is called, for its colour: "chestnut brown hair", "two blonde braids", "a platinum-haired woman".
HAIR_NOUNS = r"hair|haired|braids?|curls|ringlets|ponytails?|locks|dreadlocks|locs|afro|mane|cornrows|fringe|bangs|fur|furred"
_WORD = re.compile(r"[\w'’-]+")

# An example of each missing detail, to be appended to the description (the warning shows the whole fixed text).
_CHARACTER_FIXES = {
    "an age": "32 years old",
    "hair (colour and style)": "shoulder-length wavy chestnut brown hair",
    "an eye colour": "emerald green eyes",
    "a distinguishing mark (beauty mark, mole, scar, freckles, tattoo, glasses...)": "a small beauty mark near the left eye",
}
_PRODUCT_FIXES = {
    "a shape": "rectangular with bevelled edges",
    "a material": "clear faceted glass",
    "a colour": "rose-gold cap, pale pink liquid",
    "a label or marking": '"AURORA" engraved in thin capitals on the front',
}
CHARACTER_EXAMPLE = (
    "Woman, 32 years old, 5'6\", medium build, shoulder-length wavy chestnut brown hair, emerald green eyes, "
    "light olive skin, small beauty mark near her left eye"
)
PRODUCT_EXAMPLE = (
    'Faceted crystal perfume bottle, 100 ml, rectangular with bevelled edges, polished rose-gold cap, pale pink '
    'liquid, "AURORA" engraved in thin capitals on the front'
)


@dataclass(frozen=True)
class LintWarning:
    """One specificity warning: where (file, field path), what is missing or wrong, and an example of a fix."""

    file: str
    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.problem}; for example: {self.fix}"


def _words(text: str) -> list[str]:
    return [w.lower().strip("'’-") for w in _WORD.findall(text)]


def _families(words: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for word in words:
        for part in [word, *word.split("-")]:
            found.update(_FAMILIES.get(part, ()))
    return found


def _colour_words(words: Iterable[str]) -> list[str]:
    return [w for w in words if w in COLOURS or any(p in COLOURS for p in w.split("-"))]


def _words_before(text: str, noun_pattern: str, span: int = 4) -> list[list[str]]:
    """For each occurrence of the noun in ``text``, the (lower-case) words right before it, up to ``span`` words,
    stopping at punctuation: the adjectives of that noun."""
    found = []
    for match in re.finditer(rf"\b(?:{noun_pattern})\b", text, re.IGNORECASE):
        clause = re.split(r"[,;:.()\n]|(?<![\w-])(?:and|with|but)(?![\w-])", text[: match.start()])[-1]
        found.append(_words(clause)[-span:])
    return found


def hair_colours(description: str) -> set[str]:
    """Colour families of the hair a description (or a scene text) gives: "chestnut brown hair" -> brown, red."""
    families: set[str] = set()
    for adjectives in _words_before(description, HAIR_NOUNS):
        families |= _families(_colour_words(adjectives))
    return families


def eye_colours(description: str) -> set[str]:
    families: set[str] = set()
    for adjectives in _words_before(description, r"eyes|eyed|irises"):
        families |= _families(_colour_words(adjectives))
    return families


def product_nouns(subject: Subject) -> set[str]:
    """What the product is called: its id's words and the last word of its description's first phrase
    ("Faceted crystal perfume bottle, 100 ml, ..." -> bottle)."""
    nouns = {w for w in re.split(r"[_-]", subject.id) if len(w) > 2}
    first = re.split(r"[,;:.()\n]|\bwith\b", subject.description)[0]
    words = _words(first)
    if words:
        nouns.add(words[-1])
    return {n for n in nouns if n not in COLOURS and n not in _SHADES}


def _missing_for_character(description: str) -> list[str]:
    missing = []
    if not _AGE.search(description):
        missing.append("an age")
    if not _HAIR.search(description) or (not hair_colours(description) and not _HAIR_WITHOUT_COLOUR.search(description)):
        missing.append("hair (colour and style)")
    if not eye_colours(description):
        missing.append("an eye colour")
    if not _MARKS.search(description):
        missing.append("a distinguishing mark (beauty mark, mole, scar, freckles, tattoo, glasses...)")
    return missing


def _missing_for_product(description: str) -> list[str]:
    missing = []
    if not _SHAPE.search(description):
        missing.append("a shape")
    if not _MATERIAL.search(description):
        missing.append("a material")
    if not _colour_words(_words(description)):
        missing.append("a colour")
    if not _LABEL.search(description):
        missing.append("a label or marking")
    return missing


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _with_additions(description: str, additions: list[str]) -> str:
    return ", ".join([description.strip().rstrip(".,;")] + additions)


def lint_brief(brief: Brief, *, file: str) -> list[LintWarning]:
    """Every specificity warning of ``brief`` (whose file is named ``file`` in the warnings), in field order."""
    warnings: list[LintWarning] = []
    for index, subject in enumerate(brief.subjects):
        field = f"subjects[{index}].description"
        description = subject.description
        if subject.kind == "character":
            missing, fixes, example = _missing_for_character(description), _CHARACTER_FIXES, CHARACTER_EXAMPLE
        else:
            missing, fixes, example = _missing_for_product(description), _PRODUCT_FIXES, PRODUCT_EXAMPLE
        if missing:
            warnings.append(LintWarning(
                file, field,
                f"{subject.kind} {subject.id!r} lacks {_listing(missing)}: the image model will invent"
                f" {'it' if len(missing) == 1 else 'them'}, differently in every image",
                _with_additions(description, [fixes[m] for m in missing]),
            ))
        count = len(_words(description))
        if count < MIN_DESCRIPTION_WORDS:
            warnings.append(LintWarning(
                file, field,
                f"{subject.kind} {subject.id!r} is described in {count} words; at least {MIN_DESCRIPTION_WORDS} are"
                " needed to pin one identity (the description is repeated verbatim in every prompt: be generous)",
                example,
            ))
    warnings += _contradictions(brief, file)
    return warnings


def _contradictions(brief: Brief, file: str) -> list[LintWarning]:
    subjects = {s.id: s for s in brief.subjects}
    warnings: list[LintWarning] = []
    for scene_index, scene in enumerate(brief.scenes):
        named = [subjects[s] for s in scene.subjects if s in subjects]
        characters = [s for s in named if s.kind == "character"]
        products = [s for s in named if s.kind == "product"]
        for part in ("reference", "start", "end", "continuity"):
            text = getattr(scene, part)
            if not text.strip():
                continue
            field = f"scenes[{scene_index}].{part}"
            for what, colours_of, noun in (("hair", hair_colours, HAIR_NOUNS), ("eye", eye_colours, r"eyes|eyed|irises")):
                described = [(s, colours_of(s.description)) for s in characters]
                described = [(s, c) for s, c in described if c]
                if not described:
                    continue
                allowed = set().union(*(c for _, c in described))
                for adjectives in _words_before(text, noun):
                    said = _colour_words(adjectives)
                    if said and not (_families(said) & allowed):
                        who = ", ".join(repr(s.id) for s, _ in described)
                        warnings.append(LintWarning(
                            file, field,
                            f"says {' '.join(said)} {what} but {who}'s description gives"
                            f" {_phrase(described[0][0].description, noun)}: the text will pull the model away"
                            " from the subject",
                            f"leave the colour out (the description is already in the prompt) or use the"
                            f" description's words: {_phrase(described[0][0].description, noun)}",
                        ))
            for product in products:
                allowed = _families(_colour_words(_words(product.description)))
                nouns = product_nouns(product)
                if not allowed or not nouns:
                    continue
                # the same noun may name several products of the scene: any of their colours is allowed
                for other in products:
                    if other is not product and nouns & product_nouns(other):
                        allowed |= _families(_colour_words(_words(other.description)))
                for adjectives in _words_before(text, "|".join(re.escape(n) for n in sorted(nouns)), span=3):
                    said = _colour_words(adjectives)
                    if said and not (_families(said) & allowed):
                        described = ", ".join(_colour_words(_words(product.description)))
                        warnings.append(LintWarning(
                            file, field,
                            f"says a {' '.join(said)} {'/'.join(sorted(nouns))} but product {product.id!r} is"
                            f" described as {described}: the text will pull the model away from the product",
                            f"leave the colour out or use the description's colours ({described})",
                        ))
    return warnings


def _phrase(description: str, noun: str) -> str:
    """The description's own words for the noun: "shoulder-length wavy chestnut brown hair"."""
    match = re.search(rf"(?:^|[,;:(])\s*([^,;:(]*?\b(?:{noun})\b)", description, re.IGNORECASE)
    return f'"{match.group(1).strip()}"' if match else "another colour"


def lint_messages(loaded: LoadedBrief) -> list[str]:
    """The lint's warnings for a loaded brief, one line each (file, field, problem, example fix): what the sensor
    logs and the brief's metadata shows."""
    return [str(w) for w in lint_brief(loaded.brief, file=str(loaded.path))]


def missing_details(description: str, kind: str) -> list[str]:
    """What a single description lacks, or [] when it is specific enough."""
    return _missing_for_character(description) if kind == "character" else _missing_for_product(description)
