"""Pictures, video and sound with no model: text on pictures, MP4 encoding and decoding (the ffmpeg of
``imageio-ffmpeg``), the ad's cut and its finish (end card, supers, sound, SRT), a clip cropped to another shape, the
storyboard sheet and PDF, and the report table. Bytes and parameters in, bytes out.

Imports ``brief`` and ``plan`` only; no Dagster, no model SDK, no storage.
"""
