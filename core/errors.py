"""Every failure a user can cause is one of these, with a message that says what to fix."""


class SpeechToFaceError(Exception):
    """Base class: the add-on and the tools report these as plain messages, not tracebacks."""


class TopologyError(SpeechToFaceError, ValueError):
    """The mesh is not a FLAME-topology head (or holds NaN/inf coordinates)."""


class AudioError(SpeechToFaceError, ValueError):
    """The audio is missing, unreadable, empty or in an unsupported format."""


class WeightsError(SpeechToFaceError):
    """Network weights are missing, corrupt, or made for another topology or front end."""


class EncoderUnavailable(SpeechToFaceError):
    """A speech encoder cannot run here (library missing for this platform, no local model)."""


class Cancelled(SpeechToFaceError):
    """The user cancelled a long operation; nothing was changed."""


class SettingsError(SpeechToFaceError, ValueError):
    """A setting is out of its range (frame rate, intensity, duration, tolerance, start frame)."""


class NotAHeadError(TopologyError):
    """The FLAME template cannot be fitted to the mesh: it does not look like a head."""
