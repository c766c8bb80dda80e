"""Cryptography recipes for secure-fota, built on ``cryptography`` and ``joserfc``.

Failures of a cryptographic check raise :class:`secure_fota.errors.VerificationError` naming
the check, never the internal cause.
"""
