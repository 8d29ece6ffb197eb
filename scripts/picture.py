"""Regenerates ``docs/storyboard.png``, the README's picture: the demo's aurora-perfume storyboard, offline.

``make picture`` runs it. It makes the campaign with ``adchain materialize`` and the offline preview backends in a
temporary data folder and Dagster instance (the repository's ``data/`` and ``.dagster_home/`` are not touched),
takes ``campaigns/aurora-perfume/storyboard.png``, scales it to at most ``WIDTH`` pixels wide and saves it as an
optimised palette PNG (145 KB at 560x1477). The preview backends are deterministic, so the same code gives the same
bytes (two runs compared). Takes 17 s on 2 cores (one 4-scene campaign: 12 images, 4 clips, the ad, the storyboard
and the report, 19 outputs, made in 13.5 s by the CLI; the rest is its start-up).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = "aurora-perfume"
WIDTH = 560  # the README shows it at this width; larger only grows the repository
COLOURS = 256


def make_storyboard(work: Path) -> Path:
    """The campaign's storyboard made offline under ``work``; its path."""
    data, home = work / "data", work / "dagster_home"
    (data / "briefs").mkdir(parents=True)
    home.mkdir()
    shutil.copy(ROOT / "data" / "briefs" / f"{CAMPAIGN}.yaml", data / "briefs")
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("ADCHAIN_", "GEMINI_", "GOOGLE_CLOUD_"))}  # offline, whatever is exported
    env.update(ADCHAIN_DATA_DIR=str(data), DAGSTER_HOME=str(home),
               ADCHAIN_IMAGE_BACKEND="preview", ADCHAIN_VIDEO_BACKEND="preview")
    subprocess.run([sys.executable, "-m", "adchain_assets.cli", "materialize", CAMPAIGN],
                   cwd=work, env=env, check=True)
    return data / "campaigns" / CAMPAIGN / "storyboard.png"


def shrink(source: Path, target: Path, width: int = WIDTH) -> tuple[int, int]:
    """``source`` scaled to at most ``width`` pixels wide, saved to ``target`` as an optimised palette PNG."""
    with Image.open(source) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        small = image.quantize(COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    target.parent.mkdir(parents=True, exist_ok=True)
    small.save(target, optimize=True)
    return small.size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "storyboard.png")
    parser.add_argument("--width", type=int, default=WIDTH)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="adchain-picture-") as work:
        size = shrink(make_storyboard(Path(work)), args.out, args.width)
    print(f"{args.out}: {size[0]}x{size[1]}, {args.out.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
