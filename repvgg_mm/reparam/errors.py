"""The error of whole-model conversion."""


class ConversionError(RuntimeError):
    """An input that cannot be converted, or a conversion that failed its checks (one-line message)."""
