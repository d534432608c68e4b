"""Input images: preflight of remote URLs, local files through an object store."""
