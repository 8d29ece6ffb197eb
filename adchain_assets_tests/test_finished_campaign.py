"""The finished ad of the sample perfume campaign, end to end (issue 24's numbers): its brand block, two captions and
a music bed (a sine tone made here) give an ad that ends on the end card, an ad.srt with two cues at the scenes'
times, -14 LUFS and a five-page storyboard PDF; editing the call to action re-makes only the cut, the PDF and the
deliverables, with no image or clip call; `adchain export --zip` writes a zip whose manifest matches its files.

Marked `subprocess`: a whole campaign with ffmpeg's mixing and loudness passes takes more than the fast tier's
few seconds (about 40 s on two busy cores). The pieces are tested quickly in test_finish.py.
"""

import json
import re
import subprocess
import zipfile

import imageio_ffmpeg
import numpy as np
import pytest

from adchain_assets.cli.export import export
from adchain_assets.media.endcard import EndCard
from adchain_assets.media.finish import end_card_frame
from adchain_assets.media.mp4 import probe, read_frames
from adchain_assets.media.sound import measure_loudness
from adchain_assets.store.files import sha256

from .helpers import FIRST_RUN, SAMPLE_BRIEFS, adchain, definitions_for, edit, execute, selected, tick

pytestmark = [pytest.mark.subprocess]
CAMPAIGN = "aurora-perfume"
CTA, NEW_CTA = "Discover Aurora", "Find your first light"


@pytest.fixture
def finished(data_dir, monkeypatch):
    """The sample perfume brief alone, with a sine tone as its music."""
    (data_dir / "briefs" / "muse-portrait.yaml").unlink()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=330:duration=6",
                    str(data_dir / "briefs" / "refs" / "tone.wav")], check=True)
    path = data_dir / "briefs" / f"{CAMPAIGN}.yaml"
    path.write_text(path.read_text() + "music: refs/tone.wav\n")
    monkeypatch.setenv("ADCHAIN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ADCHAIN_IMAGE_BACKEND", "gemini")
    return data_dir


def run_tick(defs, instance):
    result = tick(defs, instance)
    for request in result.run_requests or []:
        assert execute(defs, instance, request).success
    return result


def last_frame(mp4: bytes) -> np.ndarray:
    with read_frames(mp4) as (_, frames):
        for frame in frames:
            last = frame
    return last.astype(int)


def shows(frame: np.ndarray, cta: str, other: str) -> bool:
    """The frame is the sample's end card with ``cta``, not with ``other``, where the two cards differ."""
    size = (frame.shape[1], frame.shape[0])
    logo = (SAMPLE_BRIEFS / "refs" / "aurora-logo.png").read_bytes()
    card = EndCard(cta, "aurora-parfums.example",
                   "Eau de parfum, 100 ml. Sample campaign made with adchain; the brand is fictional.", ("#2b1d1a",), logo)
    mine = end_card_frame(card, "9:16", size).astype(int)
    theirs = end_card_frame(EndCard(other, card.url, card.legal, card.colors, logo), "9:16", size).astype(int)
    differ = np.abs(mine - theirs).sum(axis=2) > 150
    print(f"  last frame vs the card with {cta!r}: {np.abs(frame - mine)[differ].mean():.1f},"
          f" with {other!r}: {np.abs(frame - theirs)[differ].mean():.1f} (mean difference where the cards differ)")
    return np.abs(frame - mine)[differ].mean() < 20 and np.abs(frame - theirs)[differ].mean() > 60


def test_the_finished_sample_ad_a_cta_edit_and_the_export(finished, instance, fake_gemini, tmp_path, cli_env):
    defs = definitions_for(finished, image_backend="gemini")
    assert selected(run_tick(defs, instance))[CAMPAIGN] == FIRST_RUN
    root = finished / "campaigns" / CAMPAIGN
    ad = (root / "ad.mp4").read_bytes()
    record = json.loads((root / "ad.json").read_text())
    # the end card is the last frame (logo drawn on it too, so compare where the CTAs differ)
    assert shows(last_frame(ad), CTA, NEW_CTA)
    # title 1.5 s, four 4 s clips and a 2.5 s card joined by 0.5 s cross-fades: scene 1 from 1.0 s, scene 4 from 11.5 s
    assert record["duration_s"] == pytest.approx(1.5 + 16 + 2.5 - 5 * 0.5, abs=0.05)
    srt = (root / "ad.srt").read_text()
    cues = re.findall(r"^(\d+)\n(\S+) --> (\S+)\n(.+)$", srt, flags=re.M)
    assert cues == [("1", "00:00:01,250", "00:00:04,750", "Every morning has a first light."),
                    ("2", "00:00:11,750", "00:00:15,250", "Aurora \u2014 wear the dawn.")]
    assert record["srt"]["sha256"] == sha256(srt.encode())
    loudness = measure_loudness(ad)
    assert probe(ad).audio and -15.0 <= loudness["integrated_lufs"] <= -13.0 and loudness["true_peak_dbtp"] <= -1.0
    assert record["loudness"]["final"] == loudness and record["loudness"]["measured"]["input_i"] is not None
    pages = len(re.findall(rb"/Type /Page\b", (root / "storyboard.pdf").read_bytes()))
    assert pages == 1 + 4
    manifest = json.loads((root / "deliverables" / "manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["ad.mp4", "ad.srt", "storyboard.pdf", "report.csv"]
    for entry in manifest["files"]:
        assert sha256((root / "deliverables" / entry["path"]).read_bytes()) == entry["sha256"]
    assert manifest["brief_sha256"] == sha256((finished / "briefs" / f"{CAMPAIGN}.yaml").read_bytes())
    print(f"\nissue 24: ad {record['duration_s']} s, loudness {loudness}, cues {len(cues)}, pdf pages {pages}")

    # the call to action changes: no image, no clip; the cut, the PDF and the deliverables are made again
    calls = len(fake_gemini.requests)
    made_at = {p.name: p.stat().st_mtime_ns for p in root.rglob("scene_*.*")}
    edit(finished / "briefs" / f"{CAMPAIGN}.yaml", f"cta: {CTA}", f"cta: {NEW_CTA}")
    result = run_tick(defs, instance)
    assert selected(result)[CAMPAIGN] == {"ad", "storyboard_pdf", "deliverables"}
    assert len(fake_gemini.requests) == calls
    assert {p.name: p.stat().st_mtime_ns for p in root.rglob("scene_*.*")} == made_at
    assert shows(last_frame((root / "ad.mp4").read_bytes()), NEW_CTA, CTA)
    assert not tick(defs, instance).run_requests

    # adchain export --zip: the manifest's hashes are the zip's files'
    target = tmp_path / "handover.zip"
    assert export(CAMPAIGN, zip_path=str(target)) == 0
    with zipfile.ZipFile(target) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert sorted(archive.namelist()) == sorted([f["path"] for f in manifest["files"]] + ["manifest.json"])
        for entry in manifest["files"]:
            data = archive.read(entry["path"])
            assert sha256(data) == entry["sha256"] and len(data) == entry["bytes"]
    assert manifest["files"][0]["sha256"] == sha256((root / "ad.mp4").read_bytes())

    # the real command: a zip, and exit 2 for an unknown campaign or one with nothing made
    env = {**cli_env, "ADCHAIN_DATA_DIR": str(finished), "ADCHAIN_IMAGE_BACKEND": "gemini",
           "GEMINI_API_KEY": "test-key-not-secret", "GEMINI_BASE_URL": fake_gemini.base_url}
    done = adchain(env, "export", CAMPAIGN, "--zip", str(tmp_path / "cli.zip"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cli.zip").read_bytes() != b"" and "ad.mp4" in done.stdout
    unknown = adchain(env, "export", "no-such-campaign")
    assert unknown.returncode == 2 and "no campaign 'no-such-campaign'" in unknown.stderr
    (finished / "briefs" / "spring.yaml").write_text((finished / "briefs" / f"{CAMPAIGN}.yaml").read_text())
    nothing = adchain(env, "export", "spring")
    assert nothing.returncode == 2 and "no deliverables yet" in nothing.stderr
