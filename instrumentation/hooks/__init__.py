"""Thin wrappers around HTTP clients' send methods; all the logic lives in ``calls``."""
