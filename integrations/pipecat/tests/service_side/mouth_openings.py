"""How open the avatar's mouth is in each frame of an MP4: run with the SERVICE's venv.

The plugin's venv has no face mesh, so the plugin's tests run this in the service's
environment (repository root on PYTHONPATH) as a subprocess: it loads the default
avatar's rig at the video's size (its mouth box) and renders the avatar at rest, and
prints one JSON list: :func:`avatar.analysis.mouth_opening` of every decoded frame,
the measure the service's own lip-sync tests use.

    python integrations/pipecat/tests/service_side/mouth_openings.py clip.mp4
"""

from __future__ import annotations

import json
import sys

import av
from avatar.analysis import mouth_opening
from avatar.config import RenderConfig
from avatar.identity import load_rig
from avatar.render import create_renderer
from avatar.state import NEUTRAL


def main(path: str) -> None:
    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    h, w = frames[0].shape[:2]
    rig = load_rig(None, size=(w, h))
    rest = create_renderer(rig, RenderConfig(size=h)).render(NEUTRAL)
    box = rig.mouth_box()
    sys.stdout.write(json.dumps([mouth_opening(f, box, rest=rest) for f in frames]) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
