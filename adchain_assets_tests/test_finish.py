"""The finish, piece by piece (fast): brief checks of the brand, captions and music; text set to fit the safe area;
captions kept off faces; the end card; SRT cues at the scenes' times; the sound at -14 LUFS; the storyboard PDF."""

import io
import re
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from adchain_assets.brief.model import BriefError, load_brief
from adchain_assets.cli.main import build_parser
from adchain_assets.media.endcard import EndCard, card_colours, end_card_problems, render_end_card
from adchain_assets.media.finish import Finish, finish_ad, finish_problems
from adchain_assets.media.layout import (
    DEFAULT_FONT,
    VERTICAL_SAFE,
    fit_or_shrink,
    fit_text,
    font_key,
    missing_glyphs,
    reference_size,
    safe_area,
)
from adchain_assets.media.mp4 import encode_mp4, probe, read_frames
from adchain_assets.media.pdf import PdfCell, StoryboardDocument, render_storyboard_pdf
from adchain_assets.media.sound import ClipSound, add_sound, measure_loudness
from adchain_assets.media.supers import FaceBox, render_caption, srt

from .helpers import SAMPLE_BRIEFS

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SIZE = (360, 640)  # the preview backend's 9:16 frame
BRIEF = """\
title: Finish
aspect_ratio: "9:16"
scenes:
  - reference: a bottle on a vanity
    start: close-up
    end: light fills the glass
    caption: First light.
  - reference: the bottle by the window
    start: it catches the sun
    end: the glass glows
"""


def tone(path: Path, frequency: int = 440, seconds: float = 3.0, video: bool = False) -> Path:
    """A sine tone (an M4A), or a small clip with the tone as its sound track."""
    source = ["-f", "lavfi", "-i", f"sine=frequency={frequency}:duration={seconds}"]
    if video:
        source = ["-f", "lavfi", "-i", f"color=c=gray:size=36x64:rate=24:duration={seconds}", *source,
                  "-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest"]
    subprocess.run([FFMPEG, "-v", "error", "-y", *source, "-c:a", "aac", str(path)], check=True)
    return path


def logo(path: Path, transparent: bool = True, fmt: str = "PNG") -> Path:
    image = Image.new("RGBA" if transparent else "RGB", (120, 60), (0, 0, 0, 0) if transparent else "white")
    image.paste((226, 190, 120), (10, 10, 110, 50))
    image.save(path, fmt)
    return path


def brief_file(folder: Path, extra: str = "", text: str = BRIEF) -> Path:
    path = folder / "finish.yaml"
    path.write_text(text + extra)
    return path


def problems(path: Path) -> list[str]:
    try:
        loaded = load_brief(path, max_scenes=8)
    except BriefError as error:
        return [str(p) for p in error.problems]
    return [str(p) for p in finish_problems(loaded)]


# ------------------------------------------------------------------------------------------- brief checks

def test_the_sample_brief_has_a_brand_and_two_captions_and_passes_the_finish_check():
    loaded = load_brief(SAMPLE_BRIEFS / "aurora-perfume.yaml", max_scenes=8)
    brief = loaded.brief
    assert brief.brand.logo and brief.brand.cta and brief.brand.url and brief.brand.legal and len(brief.brand.colors) == 1
    assert sum(bool(scene.caption) for scene in brief.scenes) == 2
    assert brief.music is None  # the sample stays quick to test: tests add their own music (a sine tone)
    assert finish_problems(loaded) == []


@pytest.mark.parametrize("extra, field, reason", [
    ("brand:\n  logo: refs/missing.png\n", "brand.logo", "does not exist"),
    ("brand:\n  logo: refs/logo.jpg\n", "brand.logo", "is a JPEG image; a logo must be a PNG with transparency"),
    ("brand:\n  logo: refs/opaque.png\n", "brand.logo", "has no transparency"),
    ("brand:\n  logo: refs/notes.txt\n", "brand.logo", "is not an image Pillow can read"),
    ("brand:\n  font: refs/notes.txt\n", "brand.font", "is not a font Pillow can read"),
    ("music: refs/notes.txt\n", "music", "is not an audio file ffmpeg can read"),
    ("music: refs/opaque.png\n", "music", "has no audio stream"),
    ("brand:\n  colors: ['#2b1d1']\n", "brand.colors[0]", "is not a colour written #rrggbb"),
    ("brand:\n  colors:\n    - #2b1d1a\n", "brand.colors", "YAML reads # as the start of a comment"),
    ("brand:\n  cta: Buy\n  logo_bug: true\n", "brand.logo_bug", "names no logo"),
    ("brand:\n  end_card_s: 0.2\n", "brand.end_card_s", "greater than or equal to 1"),
])
def test_bad_brand_and_music_files_are_brief_errors_naming_the_field(tmp_path, extra, field, reason):
    refs = tmp_path / "refs"
    refs.mkdir()
    logo(refs / "logo.jpg", transparent=False, fmt="JPEG")
    logo(refs / "opaque.png", transparent=False)
    (refs / "notes.txt").write_text("not a font, not a sound")
    found = problems(brief_file(tmp_path, extra))
    assert any(f": {field}: " in line and reason in line for line in found), found


def validate(*argv: str) -> int:
    """`adchain validate` in this process (its handler: no Dagster instance is needed to validate)."""
    args = build_parser().parse_args(["validate", *argv])
    return args.handler(args)


def test_a_caption_too_long_for_the_safe_area_is_refused_by_validate_and_a_short_one_passes(tmp_path, capsys):
    too_long = "A caption that goes on and on about the morning light and the bottle and the window " * 2
    path = brief_file(tmp_path, text=BRIEF.replace("caption: First light.", f"caption: {too_long.strip()}"))
    assert validate(str(path)) == 2
    err = capsys.readouterr().err
    assert f"{path}: scenes[0].caption: is too long to fit the 9:16 safe area" in err
    assert validate(str(brief_file(tmp_path))) == 0


def test_text_the_font_cannot_draw_is_refused_naming_the_field(tmp_path):
    found = problems(brief_file(tmp_path, "brand:\n  cta: \u4e2d\u6587 now\n"))
    assert any(": brand.cta: the default font (DejaVu Sans Bold) cannot draw '\u4e2d' (U+4E2D)" in p for p in found), found
    assert missing_glyphs("Caf\u00e9 \u2014 10 \u20ac", "default") == []


def test_a_brand_font_file_is_used_and_pinned_with_the_logo_and_music(tmp_path):
    from adchain_assets.store.snapshots import load_pinned, pin

    refs = tmp_path / "briefs" / "refs"
    refs.mkdir(parents=True)
    (refs / "brand.ttf").write_bytes(DEFAULT_FONT.read_bytes())
    logo(refs / "logo.png")
    tone(refs / "bed.m4a", seconds=1)
    path = brief_file(tmp_path / "briefs", "brand:\n  logo: refs/logo.png\n  font: refs/brand.ttf\n  cta: Go\n"
                                           "music: refs/bed.m4a\n")
    loaded = load_brief(path, max_scenes=8)
    assert finish_problems(loaded) == []
    sha = pin(loaded, str(tmp_path / "store"))
    pinned = load_pinned("finish", sha, str(tmp_path / "store"), max_scenes=8)
    for relative in ("refs/logo.png", "refs/brand.ttf", "refs/bed.m4a"):
        assert pinned.resolve(relative).read_bytes() == (tmp_path / "briefs" / relative).read_bytes()


# ---------------------------------------------------------------------------------------------- layout

def test_text_is_wrapped_and_shrunk_to_fit_and_refused_when_it_cannot_at_the_smallest_size():
    key = font_key(None)
    short = fit_text("Discover Aurora", key, 300, 200, 60, 20, 3)
    assert short is not None and short.width <= 300 and short.height <= 200 and len(short.lines) <= 3
    long = fit_text("Discover the new Aurora eau de parfum at your nearest store today", key, 300, 200, 60, 20, 3)
    assert long is not None and long.px < 60 and long.width <= 300 and long.height <= 200
    assert fit_text("word " * 80, key, 300, 100, 40, 20, 3) is None
    forced = fit_or_shrink("word " * 80, key, 300, 100, 40, 20, 3)  # never cut off: smaller, not shorter
    assert forced is not None and " ".join(forced.lines) == ("word " * 80).strip() and forced.height <= 100


def test_the_vertical_safe_area_keeps_clear_of_the_top_14_and_bottom_20_percent():
    assert safe_area("9:16") == VERTICAL_SAFE
    assert VERTICAL_SAFE.box((1080, 1920)) == (65, 269, 1015, 1536)
    assert safe_area("16:9").box((1920, 1080)) == (96, 54, 1824, 1026)
    assert reference_size("9:16") == (1080, 1920) and reference_size("4:5") == (1080, 1350)


def test_a_caption_goes_to_the_lower_third_unless_a_face_is_there_then_the_top():
    key = font_key(None)
    plain = render_caption("Every morning has a first light.", key, SIZE, VERTICAL_SAFE)
    assert plain.position == "lower" and not plain.over_face
    left, top, right, bottom = VERTICAL_SAFE.box(SIZE)
    height, width = plain.overlay.rgba.shape[:2]
    assert plain.overlay.left >= left and plain.overlay.left + width <= right
    assert plain.overlay.top >= top and plain.overlay.top + height <= bottom
    # a face in the lower third of a 768x1344 start frame (mapped into the 360x640 ad)
    face = FaceBox(260, 880, 520, 1160, 768, 1344)
    moved = render_caption("Every morning has a first light.", key, SIZE, VERTICAL_SAFE, [face])
    assert moved.position == "upper" and not moved.over_face
    everywhere = [FaceBox(0, y, 768, y + 300, 768, 1344) for y in (150, 500, 850, 1050)]
    stuck = render_caption("Every morning has a first light.", key, SIZE, VERTICAL_SAFE, everywhere)
    assert stuck.over_face


def test_the_end_card_shows_its_texts_inside_the_safe_area_on_the_brand_colour(tmp_path):
    card = EndCard("Discover Aurora", "aurora-parfums.example",
                   "Eau de parfum, 100 ml. Sample campaign made with adchain; the brand is fictional.",
                   ("#2b1d1a",), logo(tmp_path / "logo.png").read_bytes())
    frame = render_end_card(card, SIZE, VERTICAL_SAFE).astype(int)
    background = np.array(card_colours(card.colors)[0])
    ink = np.abs(frame - background).sum(axis=2) > 30
    left, top, right, bottom = VERTICAL_SAFE.box(SIZE)
    assert ink.any() and not ink[:top].any() and not ink[bottom:].any()
    assert not ink[:, :left].any() and not ink[:, right:].any()
    other = render_end_card(EndCard("Shop Aurora now", card.url, card.legal, card.colors, card.logo), SIZE, VERTICAL_SAFE)
    assert np.abs(other.astype(int) - frame).mean() > 1.0  # the CTA is what differs
    assert end_card_problems(EndCard(cta="Discover " * 40), reference_size("9:16"), VERTICAL_SAFE)[0][0] == "cta"


def test_srt_cues_are_numbered_with_millisecond_times():
    assert srt([(1.25, 4.75, "First  light."), (3725.5, 3727.0, "Aurora \u2014 wear the dawn.")]) == (
        "1\n00:00:01,250 --> 00:00:04,750\nFirst light.\n\n"
        "2\n01:02:05,500 --> 01:02:07,000\nAurora \u2014 wear the dawn.\n"
    )


# ------------------------------------------------------------------------------------------ the finished ad

def clip(shade: int, seconds: float = 2.0) -> bytes:
    frames = (np.full((SIZE[1], SIZE[0], 3), shade, np.uint8) for _ in range(round(seconds * 24)))
    return encode_mp4(frames, SIZE)


def test_a_finished_ad_ends_on_the_card_with_cues_at_the_scenes_times_and_music_at_minus_14_lufs(tmp_path):
    card = EndCard("Discover Aurora", "aurora.example", "Fictional brand.", ("#2b1d1a",))
    bug = logo(tmp_path / "logo.png").read_bytes()
    finish = Finish("9:16", captions=["First light.", "", "Wear the dawn."], end_card=card, end_card_s=1.0,
                    music=tone(tmp_path / "bed.m4a", seconds=2).read_bytes(), logo_bug=bug)
    finished = finish_ad([clip(60), clip(120), clip(180)], finish, crossfade_s=0.5, title="Aurora")
    info = probe(finished.mp4)
    # title, three clips, end card: four cross-fades
    assert info.audio and finished.info.duration_s == pytest.approx(1.5 + 3 * 2 + 1.0 - 4 * 0.5, abs=0.05)
    with read_frames(finished.mp4) as (_, frames):
        every = list(frames)
    last = every[-1].astype(int)
    middle = every[round(3.5 * 24)].astype(int)  # scene 2, no caption: grey 120 but for the logo bug
    left, top, right, _ = VERTICAL_SAFE.box(SIZE)
    corner = middle[top:top + 40, right - 50:right]
    assert np.abs(corner - 120).max() > 60 and np.abs(middle[300:400] - 120).max() < 8
    rendered = render_end_card(card, SIZE, VERTICAL_SAFE).astype(int)
    other = render_end_card(EndCard("Shop now", card.url, card.legal, card.colors), SIZE, VERTICAL_SAFE).astype(int)
    cta = np.abs(rendered - other).sum(axis=2) > 150  # where the two calls to action differ
    assert np.abs(last - rendered).mean() < 4.0  # H.264's colour conversion moves flat colours by 1-3 levels
    assert np.abs(last - rendered)[cta].mean() < 20 < 60 < np.abs(last - other)[cta].mean()
    # title 1.5 s, clips of 2 s overlapping by 0.5 s: clip 1 from 1.0 s, clip 3 from 4.0 s; cues from the middle
    # of the cross-fade in to the middle of the cross-fade out
    cues = re.findall(r"(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)\n", finished.srt)
    assert cues == [("00:00:01,250", "00:00:02,750", "First light."), ("00:00:04,250", "00:00:05,750", "Wear the dawn.")]
    loudness = measure_loudness(finished.mp4)
    assert -15.0 <= loudness["integrated_lufs"] <= -13.0 and loudness["true_peak_dbtp"] <= -1.0
    assert finished.loudness["measured"]["input_i"] < -15 and finished.loudness["final"] == loudness
    assert finished.captions[0]["position"] == "lower" and finished.captions[1] is None


def band_levels(media: bytes, frequencies: tuple[int, int]) -> list[float]:
    """Power (dB) of the ad's sound at each frequency, over its middle second."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.mp4"
        path.write_bytes(media)
        raw = subprocess.run([FFMPEG, "-v", "error", "-ss", "2.5", "-t", "1", "-i", str(path), "-ac", "1", "-ar", "48000",
                              "-f", "f32le", "-"], capture_output=True, check=True).stdout
    samples = np.frombuffer(raw, np.float32)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    hz = np.fft.rfftfreq(len(samples), 1 / 48000)
    return [20 * np.log10(spectrum[np.abs(hz - f) < 15].max()) for f in frequencies]


def test_the_clips_own_sound_is_kept_and_ducked_under_the_music(tmp_path):
    video = clip(90, seconds=6.0)
    clip_sound = tone(tmp_path / "clip.mp4", frequency=1000, seconds=6, video=True).read_bytes()
    sounds = [ClipSound(clip_sound, 0.0, 6.0)]
    alone, report = add_sound(video, 6.0, None, sounds)
    assert report["applied"]["normalization_type"] in ("linear", "dynamic")
    assert -15.0 <= measure_loudness(alone)["integrated_lufs"] <= -13.0
    music = tone(tmp_path / "bed.m4a", frequency=440, seconds=6).read_bytes()
    both, _ = add_sound(video, 6.0, music, sounds)
    music_db, clip_db = band_levels(both, (440, 1000))
    assert music_db - clip_db == pytest.approx(12.0, abs=2.0)  # the clip's sound 12 dB under the music
    silent, none = add_sound(video, 6.0, None, [])
    assert silent == video and none is None


# ------------------------------------------------------------------------------------------------- the PDF

def test_the_storyboard_pdf_has_a_cover_and_a_numbered_page_per_scene(tmp_path):
    loaded = load_brief(SAMPLE_BRIEFS / "aurora-perfume.yaml", max_scenes=8)
    png = io.BytesIO()
    Image.new("RGB", (72, 128), (200, 160, 120)).save(png, "PNG")
    made = {"take": 1, "backend": "preview", "model": "m", "note": ["warmer light"], "approved": True,
            "consistency": {"bottle": {"kind": "product", "value": 0.7, "passed": True}}}
    rows = [{"reference": PdfCell(png.getvalue(), made), "start": None, "end": PdfCell(png.getvalue(), made)}
            for _ in loaded.brief.scenes]
    pdf = render_storyboard_pdf(StoryboardDocument(brief=loaded.brief, campaign="aurora-perfume",
                                                   brief_sha256=loaded.sha256, spend_usd=0.25, rows=rows))
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type /Page\b", pdf)) == 1 + len(loaded.brief.scenes)
    assert b"/CreationDate" not in pdf  # the same storyboard is the same bytes


# ---------------------------------------------------------------------------------------------- lineage

@pytest.mark.parametrize("old, new", [
    ("cta: Discover Aurora", "cta: Find your first light"),
    ("caption: Every morning has a first light.", "caption: Every dawn is new."),
    ('colors: ["#2b1d1a"]', 'colors: ["#102030"]'),
])
def test_a_brand_or_caption_edit_changes_the_cut_and_the_pdf_requests_and_no_image_or_clip(tmp_path, old, new):
    import shutil

    from adchain_assets.plan.requests import Maker, Parent, build_request, output_names, parents_of

    shutil.copytree(SAMPLE_BRIEFS, tmp_path / "briefs")
    path = tmp_path / "briefs" / "aurora-perfume.yaml"
    before = load_brief(path, max_scenes=8)
    path.write_text(path.read_text().replace(old, new))
    after = load_brief(path, max_scenes=8)
    makers = {"image_maker": Maker("gemini", "image-model"), "video_maker": Maker("veo", "video-model")}

    def record(name):  # a stored parent as the plan sees it: its provenance
        return Parent(name, {"sha256": f"{name:>64}".replace(" ", "0")[-64:], "take": 0})

    changed = set()
    for name in output_names(4):
        parents = {p: record(p) for p in parents_of(name, before)}
        if build_request(name, before, parents, **makers).fingerprint != build_request(name, after, parents, **makers).fingerprint:
            changed.add(name)
    assert changed == {"ad", "storyboard_pdf"}  # the deliverables follow as their parents' sha256 change


def test_a_cta_edit_is_priced_0_and_in_sheets_mode_the_pdf_shows_and_follows_the_sheets(tmp_path):
    import hashlib
    import shutil

    from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL
    from adchain_assets.plan.estimate import NO_CALL, estimate_plan
    from adchain_assets.plan.plan import Stored, plan_campaign
    from adchain_assets.plan.requests import Maker, Parent, build_request, outputs_of, parents_of

    shutil.copytree(SAMPLE_BRIEFS, tmp_path / "briefs")
    path = tmp_path / "briefs" / "aurora-perfume.yaml"
    path.write_text(path.read_text().replace("reference_mode: chain", "reference_mode: sheets"))
    loaded = load_brief(path, max_scenes=8)
    makers = {"image_maker": Maker("gemini", DEFAULT_IMAGE_MODEL), "video_maker": Maker("veo", DEFAULT_VIDEO_MODEL)}

    def made(name, salt=""):  # a stored output's provenance as the plan reads it
        return {"sha256": hashlib.sha256((name + salt).encode()).hexdigest(), "take": 0}

    records = {}  # every output made under the brief as it is
    for name in outputs_of(loaded.brief):
        parents = {p: Parent(p, records[p]) for p in parents_of(name, loaded, makers["image_maker"])}
        records[name] = {**made(name), "request_sha256": build_request(name, loaded, parents, **makers).fingerprint}
    sheets = [name for name in parents_of("storyboard_pdf", loaded) if name.startswith("subjects/")]
    assert sheets == ["subjects/bottle", "subjects/woman"]  # the cover shows them: a new sheet re-makes the PDF
    parents = {p: Parent(p, records[p]) for p in parents_of("storyboard_pdf", loaded)}
    parents[sheets[0]] = Parent(sheets[0], made(sheets[0], "another take"))
    assert build_request("storyboard_pdf", loaded, parents, **makers).fingerprint != records["storyboard_pdf"]["request_sha256"]

    # the call to action changes: the ad, the PDF and the deliverables, priced $0 (no model call)
    path.write_text(path.read_text().replace("cta: Discover Aurora", "cta: Find your first light"))
    edited = load_brief(path, max_scenes=8)
    stored = Stored(records)
    plan = plan_campaign(edited, stored, **makers)
    assert plan.outputs == ["ad", "storyboard_pdf", "deliverables"]
    estimate = estimate_plan(plan, edited, stored, **makers, cached=lambda key: None)
    assert estimate.usd == 0.0 and {one.basis for one in estimate.outputs.values()} == {NO_CALL}
