"""The avatar's identity: a portrait prepared into a rig (landmarks, masks, colours).

``load_rig(None)`` gives the default avatar (``skimage.data.astronaut()``), prepared
once into the cache; ``prepare_bundle(photo, out_dir)`` writes an inspectable bundle.
"""

from avatar.identity.bundle import (
    MIN_FACE_PX,
    avatar_cache_dir,
    default_photo,
    load_rig,
    prepare_bundle,
    read_bundle,
)
from avatar.identity.errors import (
    BundleError,
    FaceTooSmallError,
    IdentityError,
    ImageDecodeError,
    ImageTooLargeError,
    ImageTooSmallError,
    NoFaceError,
)
from avatar.identity.framing import Framing
from avatar.identity.image import MAX_PIXELS, load_image
from avatar.identity.rig import JAW_DROP, RIG_VERSION, AvatarRig, RigColors

__all__ = [
    "JAW_DROP",
    "MAX_PIXELS",
    "MIN_FACE_PX",
    "RIG_VERSION",
    "AvatarRig",
    "BundleError",
    "FaceTooSmallError",
    "Framing",
    "IdentityError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "NoFaceError",
    "RigColors",
    "avatar_cache_dir",
    "default_photo",
    "load_image",
    "load_rig",
    "prepare_bundle",
    "read_bundle",
]
