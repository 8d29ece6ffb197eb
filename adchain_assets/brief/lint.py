"""The specificity lint: warnings about briefs that are valid but too vague to keep a subject the same.

The seed's post-mortem: with the text "woman in her 30s wearing ivory blouse" the image model drew a different woman
in every scene, because the text could be anyone and the model follows the text over the reference image. The fix
was one detailed description per subject (age, hair, eyes, a distinguishing mark; for a product its shape or size,
material, colours and label), repeated verbatim. The brief format repeats the description; this lint asks for the
detail, and for scene texts that do not contradict it.

What it checks, per subject description (``subjects[i].description``):

* a character without an age (a number or a decade: "32 years old", "in her 30s"), hair (with a colour, or
  bald/shaved; fur for an animal), an eye colour ("hazel eyes", "eyes a deep brown"), or a distinguishing mark
  (beauty mark, mole, scar, freckles, tattoo, glasses, a coat patch, ...);
* a product without a shape or a size (an outline word, "-shaped", or a measure: "42 mm", "100 ml", "30 cm tall",
  "5'6\"", "A5", "size 10"), a material, a colour, or a label/marking (printed or engraved text, a logo, a name in
  double or single quotes);
* a description of fewer than :data:`MIN_DESCRIPTION_WORDS` words: too short to pin one identity;

and per scene text (``scenes[k].reference|start|end|continuity``) naming a subject, a colour that contradicts the
description: another hair or eye colour for a character, another colour for a product's object ("a blue bottle"
when the bottle is described pink and rose-gold).

A fix names what to add and the kind of thing (a few generic words as examples); it never appends a made-up
attribute to the user's text: only the user knows whether the watch is round or the woman's eyes are green.

What it cannot do: it reads English words, not meaning. It knows a fixed vocabulary of colours, materials, shapes
and marks (:data:`COLOURS`, ...); a description in another language, or one using words it does not know, gets
warnings a human can overrule (the warnings never stop a run unless ``adchain validate --strict`` is asked for). A
contradiction is only seen when the colour stands right before the thing ("blonde hair", "a blue glass bottle");
"her hair, now blonde" is missed. A description's colour may also follow its noun ("eyes a deep brown") when only
filler words stand between. It does not judge whether a detail is plausible (a size of "900 mm" for a watch passes).
Pure and cheap: a sample brief (2 subjects, 3 or 4 scenes) is linted in about 2 ms.
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
# What hair is called, for its colour: "chestnut brown hair", "two blonde braids", "a platinum-haired woman",
# "an auburn bob", "a platinum blonde pixie cut".
HAIR_NOUNS = (r"hair|haired|braids?|curls|ringlets|ponytails?|locks|dreadlocks|locs|afro|mane|cornrows|fringe|bangs"
              r"|fur|furred|bob|pixie(?:[\s-]cut)?|mohawk|quiff|mullet|updo")
EYE_NOUNS = r"eyes|eyed|irises"
_HAIR = re.compile(rf"\b(?:{HAIR_NOUNS}|bald|shaved head|shaven head|buzz[\s-]?cut|crew[\s-]?cut)\b", re.IGNORECASE)
_HAIR_WITHOUT_COLOUR = re.compile(r"\b(?:bald|shaved head|shaven head)\b", re.IGNORECASE)
_MARKS = re.compile(
    r"\b(?:beauty[\s-]?(?:mark|spot)|mole|scar(?:red)?|freckle[sd]?|tattoo(?:ed|s)?|birthmark|dimpled?|dimples"
    r"|piercings?|pierced|nose[\s-]?ring|glasses|spectacles|beard(?:ed)?|moustache|mustache|stubble|goatee"
    r"|gap[\s-]?toothed|gap between (?:his|her|their) (?:front )?teeth|widow'?s peak|cleft chin|heterochromia"
    r"|braces|vitiligo|port[\s-]?wine stain|sideburns|eyebrow slit|hooked nose|aquiline nose|crooked nose"
    r"|broken nose|missing tooth|gold tooth|earrings?|patch(?:es)?|spots|spotted|markings|collar|wrinkles|wrinkled"
    r"|laugh lines|crow'?s[\s-]feet|hearing aid|(?:nose|lip|eyebrow|tongue) (?:stud|ring)|septum|eye[\s-]?patch)\b",
    re.IGNORECASE,
)
_SHAPE = re.compile(
    r"(?:-shaped\b|\b(?:shape|rectangular|square|round(?:ed)?|cylindrical|cylinder|oval|faceted|slim|slender|tall"
    r"|squat|spherical|sphere|cube|cubic|flask|teardrop|hexagonal|octagonal|tapered|tapering|curved|domed?|pyramid"
    r"|triangular|conical|cone|flat|bevell?ed|angular|boxy|circular|elongated|bulbous|hourglass|rectangle"
    r"|wedge|disc|disk|ring|tubular|tube|oblong|trapezoidal|barrel|capsule|arched|low-top|high-top|mid-top)\b)",
    re.IGNORECASE,
)
# A size is as good as a shape for pinning a product's form: a measure with its unit ("42 mm", "100 ml", "1.5 L",
# "20 x 30 cm", "12-inch"), a height in feet and inches (5'6"), a paper size (A5) or a size label (size 10, EU 42).
_SIZE = re.compile(
    r"(?:\b\d+(?:[.,]\d+)?(?:\s*[x×]\s*\d+(?:[.,]\d+)?)*[\s-]*(?:mm|cm|m|inch(?:es)?|in\.|ft|feet|foot|ml|cl|dl|l"
    r"|litres?|liters?|fl\.?\s*oz|oz|ounces?|g|kg|grams?|lbs?|pounds?|gallons?|pints?)\b"
    r"|\b\d+(?:[.,]\d+)?\s*(?:\"|”|″)"
    r"|\b\d{1,2}\s*(?:'|’|′)\s*\d{1,2}\b"
    r"|\b[AB]\d{1,2}\b"
    r"|\b(?:size|EU|US|UK)\s*\d+(?:[.,]\d+)?\b|\bsize\s+(?:XXS|XS|S|M|L|XL|XXL|small|medium|large)\b)",
    re.IGNORECASE,
)
_MATERIAL = re.compile(
    r"\b(?:glass|crystal|plastic|metal(?:lic)?|alumin(?:i)?um|steel|stainless|gold|silver|brass|copper|bronze|chrome"
    r"|ceramic|porcelain|stoneware|wood(?:en)?|oak|walnut|bamboo|leather|suede|paper|cardboard|carton|cotton|silk"
    r"|linen|wool|fabric|canvas|denim|rubber|silicone|acrylic|marble|stone|concrete|resin|titanium|enamel|lacquer(?:ed)?"
    r"|velvet|felt|cork|tin|iron|pewter|nylon|polyester|mesh|foil|vinyl|polycarbonate|knit(?:ted)?|satin|cashmere"
    r"|tweed|fleece)\b",
    re.IGNORECASE,
)
# Text in quotes: the name on a product. A quote after a digit is an inch or foot mark (12", 5'6"), and a single
# quote opens only where no letter stands before it and closes where none follows, so that the apostrophes of
# "men's" or "Dad's Mug" are not quotes.
_QUOTED = r"(?<!\d)\"[^\"]+\"|“[^”]+”|«[^»]+»|‘[^’]+’|(?<![\w'])'(?:[^'\n]|'(?=\w)){1,80}'(?![\w'])"
_LABEL = re.compile(
    rf"(?:{_QUOTED}"
    r"|\b(?:labell?ed|labels?|logo|logos|engraved|embossed|debossed|etched|printed|print"
    r"|lettering|letters|wordmark|monogram(?:med)?|inscription|inscribed|reads|reading|stamped|sticker|badge|emblem"
    r"|insignia|brand(?:ed)?|branding|text|writing|written|marking|markings|marked)\b)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[\w'’-]+")
# Words that may stand between a noun and its colour when the colour follows ("eyes a deep brown", "eyes of grey").
_FILLER = frozenset({"a", "an", "the", "of", "are", "is", "in", "that", "which"})

# Each detail the lint asks for, and what to add for it: the kind of thing, with generic words as examples. Never a
# value for this subject: only the user knows it.
_CHARACTER_DETAILS = {
    "an age": "an age (in years or a decade, e.g. '32 years old', 'in his 50s')",
    "hair (colour and style)": "hair (its colour, length and style, e.g. 'short curly black hair'; or 'bald')",
    "an eye colour": "an eye colour (e.g. 'hazel eyes', 'blue-grey eyes')",
    "a distinguishing mark": "a distinguishing mark (one the person has: a beauty mark, mole, scar, freckles, tattoo,"
                             " glasses...)",
}
_PRODUCT_DETAILS = {
    "a shape or size": "a shape or size (its outline or dimensions, e.g. 'round', 'rectangular', '42 mm', '100 ml')",
    "a material": "a material (what it is made of, e.g. 'glass', 'brushed steel', 'leather')",
    "a colour": "a colour (of each visible part, e.g. body, cap, strap, contents)",
    "a label or marking": "a label or marking (the text printed or engraved on it, in quotes, and where it sits)",
}
# What a full description names, for a description too short to pin an identity.
_FULL_DESCRIPTION = {
    "character": "a character's description names the age, height and build, hair (colour, length, style), eye"
                 " colour, skin tone, distinguishing marks and the outfit that stays the same across scenes",
    "product": "a product's description names its shape or size, material, the colour of each part, and the text"
               " on its label or marking in quotes",
}
# What complete descriptions look like, for the draft's instructions to a text model (which writes a brief from an
# idea, so has no user's text to keep); the lint's warnings never show them as a fix for a user's description.
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
    """One specificity warning: where (file, field path), what is missing or wrong, and how to fix it (what to add
    or change, never a made-up value)."""

    file: str
    field: str
    problem: str
    fix: str

    @property
    def message(self) -> str:
        """The warning without its file: ``field: problem; fix``."""
        return f"{self.field}: {self.problem}; {self.fix}"

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


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


def _clauses(text: str) -> list[str]:
    return re.split(r"[,;:.()\n]|(?<![\w-])(?:and|with|but)(?![\w-])", text)


def _words_before(text: str, noun_pattern: str, span: int = 4) -> list[list[str]]:
    """For each occurrence of the noun in ``text``, the (lower-case) words right before it, up to ``span`` words,
    stopping at punctuation: the adjectives of that noun."""
    found = []
    for match in re.finditer(rf"\b(?:{noun_pattern})\b", text, re.IGNORECASE):
        found.append(_words(_clauses(text[: match.start()])[-1])[-span:])
    return found


def _colours_after(text: str, noun_pattern: str) -> list[str]:
    """Colour words right after each occurrence of the noun, past filler words only: "eyes a deep brown" -> brown;
    "eyes behind gold-rimmed glasses" -> none."""
    found = []
    for match in re.finditer(rf"\b(?:{noun_pattern})\b", text, re.IGNORECASE):
        words = _words(_clauses(text[match.end():])[0])
        while words and words[0] in _FILLER:
            words.pop(0)
        while words and (words[0] in _SHADES or _colour_words(words[:1])):
            found += _colour_words(words[:1])
            words.pop(0)
    return found


def _noun_colours(description: str, noun_pattern: str) -> set[str]:
    families = _families(_colours_after(description, noun_pattern))
    for adjectives in _words_before(description, noun_pattern):
        families |= _families(_colour_words(adjectives))
    return families


def hair_colours(description: str) -> set[str]:
    """Colour families of the hair a description gives: "chestnut brown hair" -> brown, red."""
    return _noun_colours(description, HAIR_NOUNS)


def eye_colours(description: str) -> set[str]:
    """Colour families of the eyes a description gives: "hazel eyes", "eyes a deep brown"."""
    return _noun_colours(description, EYE_NOUNS)


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
        missing.append("a distinguishing mark")
    return missing


def _missing_for_product(description: str) -> list[str]:
    missing = []
    # a number in the quoted name ("N°5", 'LUMEN 300 M') is text on the product, not its size
    if not _SHAPE.search(description) and not _SIZE.search(re.sub(_QUOTED, " ", description)):
        missing.append("a shape or size")
    if not _MATERIAL.search(description):
        missing.append("a material")
    if not _colour_words(_words(description)):
        missing.append("a colour")
    if not _LABEL.search(description):
        missing.append("a label or marking")
    return missing


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def lint_brief(brief: Brief, *, file: str) -> list[LintWarning]:
    """Every specificity warning of ``brief`` (whose file is named ``file`` in the warnings), in field order."""
    warnings: list[LintWarning] = []
    for index, subject in enumerate(brief.subjects):
        field = f"subjects[{index}].description"
        description = subject.description
        if subject.kind == "character":
            missing, details = _missing_for_character(description), _CHARACTER_DETAILS
        else:
            missing, details = _missing_for_product(description), _PRODUCT_DETAILS
        if missing:
            warnings.append(LintWarning(
                file, field,
                f"{subject.kind} {subject.id!r} lacks {_listing(missing)}: the image model will invent"
                f" {'it' if len(missing) == 1 else 'them'}, differently in every image",
                f"add what is true of this {subject.kind}: " + "; ".join(details[m] for m in missing),
            ))
        count = len(_words(description))
        if count < MIN_DESCRIPTION_WORDS:
            warnings.append(LintWarning(
                file, field,
                f"{subject.kind} {subject.id!r} is described in {count} words; at least {MIN_DESCRIPTION_WORDS} are"
                " needed to pin one identity (the description is repeated verbatim in every prompt: be generous)",
                f"write more: {_FULL_DESCRIPTION[subject.kind]}",
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
            for what, colours_of, noun in (("hair", hair_colours, HAIR_NOUNS), ("eye", eye_colours, EYE_NOUNS)):
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
    """The lint's warnings for a loaded brief, one line each (file, field, problem, fix): what the sensor logs and
    the brief's metadata shows."""
    return [str(w) for w in lint_brief(loaded.brief, file=str(loaded.path))]
