"""The avatar's config sections: the world model (``avatar``) and the renderer
(``render``). The whole tree is composed in ``streaming.config``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from models.config import (
    Device,
)

ENV_PREFIX = "GWM_"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
# Where a regular (non-editable) install puts the profiles (pyproject data-files).
INSTALLED_CONFIG_DIR = Path(sys.prefix) / "share" / "gwm-avatars" / "configs"


class Section(BaseModel):
    """A config section: unknown fields are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AvatarConfig(Section):
    """Which avatar to animate and how it behaves."""

    bundle: Path | None = Field(
        default=None, description="Avatar bundle folder or a photo; None: the default portrait"
    )
    seed: int = 0
    lookahead_ms: int = Field(
        default=60, ge=0, le=200, description="How far ahead of the sound the mouth may prepare"
    )
    blink_rate_per_min: float = Field(default=17.0, gt=0.0, le=60.0)


class RenderConfig(Section):
    """The renderer and the video it produces."""

    backend: Literal["cpu", "torch"] = "cpu"
    device: Device = "auto"
    size: int = Field(default=512, ge=64, le=2160, description="Output height (square: width too)")
    width: int | None = Field(default=None, ge=64, le=3840, description="None: square")
    fps: int = Field(default=25, ge=1, le=60)
    max_batch: int = Field(default=16, ge=1, le=256)
    reuse_below_px: float = Field(
        default=0.5,
        ge=0.0,
        le=4.0,
        description=(
            "Live video: send the last frame again while the avatar's state moves no pixel "
            "this far from it (idle, listening; never speech, blinks or saccades); 0: off"
        ),
    )
    encoder_preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"
    ] = Field(default="veryfast", description="x264 preset of rendered MP4s (faster: bigger)")
    encoder_crf: int = Field(
        default=20, ge=0, le=51, description="x264 constant quality of rendered MP4s (lower: finer)"
    )
    encoder_params: str = Field(
        default="me=dia:subme=1",
        pattern=r"^[A-Za-z0-9_.,:=+-]*$",
        description=(
            "Extra x264 options of rendered MP4s; the default, the quickest motion search, "
            "is ample for a talking head's small motion (a quarter less encoding time)"
        ),
    )
