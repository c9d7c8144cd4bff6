"""Self-supervised methods for universally slimmable networks: losses, heads, EMA, the method registry."""

from us3l.ssl.methods import METHODS, SSLMethod, create_method, register_method

__all__ = ["METHODS", "SSLMethod", "create_method", "register_method"]
