"""One error hierarchy for the kiosk, so callers can catch what they can handle."""


class SkinscanError(Exception):
    """Base of every error the kiosk raises on purpose."""


class ImageReadError(SkinscanError):
    """A file could not be read as a usable image; the message says why."""


class ModelError(SkinscanError):
    """A model file or its metadata is missing, corrupt or does not match."""


class RuntimeUnavailableError(SkinscanError):
    """Neither LiteRT (ai-edge-litert) nor tflite-runtime can be imported."""


class CameraError(SkinscanError):
    """A frame source cannot be opened or stopped delivering frames; the message says which."""
