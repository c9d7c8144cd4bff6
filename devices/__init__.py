"""us3l devices package."""
