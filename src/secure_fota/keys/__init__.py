"""The key directory: its layout, generation, loading and PKCS#12 keystores, for both halves.

:mod:`.directory` (file names, reading and writing key files, the author's and the device's
keys, a device's own copy), :mod:`.generate` (the key set, rotation), :mod:`.tls` (development
TLS certificates), :mod:`.keystore` (the seed's PKCS#12 keystore). Import the module you need:
this package loads nothing by itself (``fota`` starts fast).
"""
