"""The ad's sound: the music bed and the clips' own sound mixed, loudness-normalised, muxed under the pictures.

Everything goes through the ffmpeg that ``imageio-ffmpeg`` ships. The mix (48 kHz stereo, 32-bit float) is:

* the music from the ad's first frame to its last, looped when shorter, faded in over :data:`MUSIC_FADE_IN_S` and
  out over :data:`MUSIC_FADE_OUT_S`;
* each clip's sound track (when the clip has one: Veo's with ``video.audio: true``) at the clip's place in the
  ad, faded in and out over the cross-fades, and lowered by :data:`CLIP_UNDER_MUSIC_DB` when there is music (the
  clips' sound ducked under the music bed).

Then ffmpeg's ``loudnorm`` in two passes: the first measures the mix (integrated loudness, true peak, loudness
range, threshold), the second applies the target with those measured values (linear, a plain gain, when the
target can be met without limiting; else loudnorm's dynamic mode). The target is -14 LUFS integrated and a true
peak of -1.5 dBTP, half a decibel under the -1 dBTP asked of the ad so that AAC encoding cannot push the peaks
over it. The finished file is measured again with ffmpeg's ``ebur128`` filter; every figure goes into the ad's
provenance. Audio is AAC at 192 kb/s. For a 17 s ad the whole of it takes about 2 s of one core.

A mix with no sound in it (silent clip tracks and no music) is not normalised: the ad stays silent.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import imageio_ffmpeg

TARGET_LUFS, TARGET_TP_DBTP, TARGET_LRA = -14.0, -1.5, 11.0
MAX_TP_DBTP = -1.0  # what the finished file must stay under
MUSIC_FADE_IN_S, MUSIC_FADE_OUT_S = 0.5, 1.5
CLIP_UNDER_MUSIC_DB = -12.0
SAMPLE_RATE = 48000
AUDIO_BITRATE = "192k"


@dataclass(frozen=True)
class ClipSound:
    """A clip's sound in the ad: its MP4, where it starts and how long it plays, its fades."""

    mp4: bytes
    start_s: float
    length_s: float
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0


def _ffmpeg(args: list[str], what: str) -> str:
    run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *args],
                         capture_output=True, text=True, errors="replace", check=False)
    if run.returncode:
        raise ValueError(f"{what} failed: {run.stderr.strip()[-400:]}")
    return run.stderr


def _json_block(stderr: str) -> dict:
    """loudnorm's ``print_format=json`` report: the last {...} in ffmpeg's log."""
    start = stderr.rfind("{")
    end = stderr.find("}", start)
    if start < 0 or end < 0:
        raise ValueError("loudnorm printed no measurement")
    return {key: value for key, value in json.loads(stderr[start:end + 1]).items()}


def _number(value: str) -> Optional[float]:
    """A figure of ffmpeg's reports; None for ``-inf`` (silence), which JSON cannot hold."""
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def mix(duration_s: float, music: Optional[bytes], clips: Sequence[ClipSound], folder: Path) -> Optional[Path]:
    """The mix as a float WAV in ``folder``; None when there is nothing to mix."""
    if music is None and not clips:
        return None
    inputs: list[str] = []
    chains: list[str] = []
    labels: list[str] = []
    fmt = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
    if music is not None:
        path = folder / "music"
        path.write_bytes(music)
        inputs += ["-stream_loop", "-1", "-i", str(path)]
        fade_out = min(MUSIC_FADE_OUT_S, duration_s / 2)
        chains.append(f"[0:a]{fmt},atrim=0:{duration_s:.6f},asetpts=N/SR/TB,"
                      f"afade=t=in:d={min(MUSIC_FADE_IN_S, duration_s / 2):.3f},"
                      f"afade=t=out:st={duration_s - fade_out:.6f}:d={fade_out:.3f}[m]")
        labels.append("[m]")
    for index, clip in enumerate(clips):
        number = index + (1 if music is not None else 0)  # the music is input 0 when there is one
        path = folder / f"clip_{index}.mp4"
        path.write_bytes(clip.mp4)
        inputs += ["-i", str(path)]
        steps = [fmt, f"atrim=0:{clip.length_s:.6f}", "asetpts=N/SR/TB"]
        if clip.fade_in_s > 0:
            steps.append(f"afade=t=in:d={clip.fade_in_s:.3f}")
        if clip.fade_out_s > 0:
            steps.append(f"afade=t=out:st={max(0.0, clip.length_s - clip.fade_out_s):.6f}:d={clip.fade_out_s:.3f}")
        if music is not None:
            steps.append(f"volume={CLIP_UNDER_MUSIC_DB}dB")
        steps.append(f"adelay=delays={round(clip.start_s * 1000)}:all=1")
        chains.append(f"[{number}:a]{','.join(steps)}[c{index}]")
        labels.append(f"[c{index}]")
    chains.append(f"{''.join(labels)}amix=inputs={len(labels)}:normalize=0:duration=longest,"
                  f"apad=whole_dur={duration_s:.6f},atrim=0:{duration_s:.6f}[mix]")
    out = folder / "mix.wav"
    _ffmpeg([*inputs, "-filter_complex", ";".join(chains), "-map", "[mix]", "-c:a", "pcm_f32le", "-y", str(out)],
            "mixing the ad's sound")
    return out


def loudnorm_filter(measured: Optional[dict] = None) -> str:
    target = f"loudnorm=I={TARGET_LUFS}:TP={TARGET_TP_DBTP}:LRA={TARGET_LRA}:print_format=json"
    if measured is None:
        return target
    return (f"{target}:measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
            f":measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}"
            f":offset={measured['target_offset']}:linear=true")


def normalise(wav: Path, folder: Path) -> tuple[Optional[Path], dict]:
    """Two loudnorm passes over ``wav``: AAC in an .m4a (None when the mix is silent) and both reports."""
    measured = _json_block(_ffmpeg(["-i", str(wav), "-af", loudnorm_filter(), "-f", "null", "-"],
                                   "measuring the ad's loudness"))
    report: dict = {"target": {"integrated_lufs": TARGET_LUFS, "true_peak_dbtp": TARGET_TP_DBTP, "lra": TARGET_LRA},
                    "measured": {k: _number(measured[k]) for k in ("input_i", "input_tp", "input_lra", "input_thresh",
                                                                  "target_offset")}}
    if report["measured"]["input_i"] is None:
        report["silent"] = True
        return None, report
    out = folder / "sound.m4a"
    applied = _json_block(_ffmpeg(
        ["-i", str(wav), "-af", f"{loudnorm_filter(measured)},aresample={SAMPLE_RATE}", "-c:a", "aac",
         "-b:a", AUDIO_BITRATE, "-ar", str(SAMPLE_RATE), "-ac", "2", "-threads", "1", "-fflags", "+bitexact",
         "-flags:a", "+bitexact", "-y", str(out)],
        "normalising the ad's loudness"))
    report["applied"] = {k: _number(applied[k]) for k in ("output_i", "output_tp", "output_lra")}
    report["applied"]["normalization_type"] = applied["normalization_type"]
    return out, report


def mux(video_mp4: bytes, audio: Path, folder: Path) -> bytes:
    """``video_mp4``'s pictures (copied) with ``audio`` (copied) as its sound track."""
    video = folder / "video.mp4"
    video.write_bytes(video_mp4)
    out = folder / "muxed.mp4"
    _ffmpeg(["-i", str(video), "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c", "copy",
             "-movflags", "+faststart", "-fflags", "+bitexact", "-y", str(out)], "adding the sound to the ad")
    return out.read_bytes()


def measure_loudness(media: bytes) -> dict:
    """Integrated loudness (LUFS), true peak (dBTP) and loudness range (LU) of ``media``'s first audio stream, as
    ffmpeg's ``ebur128`` filter measures them."""
    with tempfile.TemporaryDirectory(prefix="adchain-sound-") as tmp:
        path = Path(tmp) / "in"
        path.write_bytes(media)
        log = _ffmpeg(["-i", str(path), "-map", "0:a:0", "-af", "ebur128=peak=true:framelog=quiet", "-f", "null",
                       "-"], "measuring loudness")
    summary = log[log.rfind("Summary:"):]
    integrated = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    lra = re.search(r"LRA:\s+(-?[\d.]+) LU", summary)
    if not (integrated and peak and lra):
        raise ValueError("ebur128 printed no summary")
    return {"integrated_lufs": _number(integrated.group(1)), "true_peak_dbtp": _number(peak.group(1)),
            "lra": float(lra.group(1))}


def add_sound(video_mp4: bytes, duration_s: float, music: Optional[bytes],
              clips: Sequence[ClipSound]) -> tuple[bytes, Optional[dict]]:
    """``video_mp4`` with the mixed, normalised sound, and the loudness report (the file as it was when nothing
    is to be heard, with None)."""
    with tempfile.TemporaryDirectory(prefix="adchain-sound-") as tmp:
        folder = Path(tmp)
        wav = mix(duration_s, music, clips, folder)
        if wav is None:
            return video_mp4, None
        audio, report = normalise(wav, folder)
        if audio is None:
            return video_mp4, report
        finished = mux(video_mp4, audio, folder)
    report["final"] = measure_loudness(finished)
    return finished, report
