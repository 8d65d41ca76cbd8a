"""Typed errors raised while turning a photo into an avatar rig."""

from __future__ import annotations


class IdentityError(ValueError):
    """A photo or bundle cannot become an avatar; the message says why in one line."""


class ImageDecodeError(IdentityError):
    """The file is missing, is not an image, or its pixels cannot be decoded."""


class ImageTooLargeError(IdentityError):
    """The image has more pixels than the configured limit (checked before decoding)."""


class ImageTooSmallError(IdentityError):
    """The image is too small to hold a usable face."""


class NoFaceError(IdentityError):
    """No face was found in the image."""


class FaceTooSmallError(IdentityError):
    """Faces were found, but the largest is too small to animate legibly."""


class BundleError(IdentityError):
    """An avatar bundle folder is incomplete or inconsistent."""
