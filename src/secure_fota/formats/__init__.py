"""Pure byte formats: ESP-IDF app images, secure-boot blocks, esp_encrypted_img, manifest claims.

Nothing here does I/O or holds keys; every parser checks lengths before it reads and raises
:class:`secure_fota.errors.FormatError` naming the field at fault.
"""
