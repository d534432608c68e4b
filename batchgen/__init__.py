"""batchgen: turn a manifest of video jobs into MP4 files through APIXO's video API."""

__version__ = "0.1.0"
