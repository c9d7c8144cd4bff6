"""us3l deploy package."""
