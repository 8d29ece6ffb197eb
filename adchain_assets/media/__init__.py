"""Pictures and video with no model: text on pictures, MP4 encoding and decoding (the ffmpeg of
``imageio-ffmpeg``), the ad's cut, a clip cropped to another shape, the storyboard sheet and the report table.
Bytes in, bytes out.

Imports ``brief`` and ``plan`` only; no Dagster, no model SDK, no storage.
"""
