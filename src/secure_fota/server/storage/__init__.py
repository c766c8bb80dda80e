"""Blob storage: a narrow protocol and its backends (local filesystem, S3-compatible)."""
