"""The firmware author's side: release building, checking, uploading, the local service (keys
live in :mod:`secure_fota.keys`)."""
