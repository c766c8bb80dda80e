"""Named bounds on every input secure-fota accepts.

Parsers enforce these before they allocate or trust a length; tests exercise each at N and N+1.
"""

from __future__ import annotations

from typing import Final

#: longest device type, firmware name or user name (the seed has no limit)
MAX_NAME_LENGTH: Final = 64
#: largest plaintext app image we sign or accept (the largest ESP32 OTA slot is below 16 MiB)
MAX_IMAGE_SIZE: Final = 16 * 1024 * 1024
#: smallest plausible app image: header, one segment header, app descriptor, checksum, digest
MIN_IMAGE_SIZE: Final = 24 + 8 + 256 + 16
#: largest manifest a device reads (ours are about 3 KiB)
MAX_MANIFEST_SIZE: Final = 16 * 1024
#: most key-rotation statements a manifest carries (its JWS header's ``rot``)
MAX_ROTATIONS: Final = 8
#: most segments the ESP-IDF bootloader accepts (ESP_IMAGE_MAX_SEGMENTS)
MAX_SEGMENTS: Final = 16
#: release sequence numbers are positive and fit a signed 32-bit integer on every platform
MAX_SEQ: Final = 2**31 - 1
#: read size for streaming encryption, decryption and hashing
STREAM_CHUNK: Final = 64 * 1024
#: longest claim string copied from esp_app_desc_t (char[32] with its NUL)
MAX_DESC_STRING: Final = 32
#: how long a dashboard sign-in lasts (seconds; signing in again starts a new session)
UI_SESSION_LIFETIME: Final = 8 * 3600
#: largest form a dashboard page accepts (sign-in, yank, rollout actions)
UI_MAX_FORM_SIZE: Final = 8 * 1024
#: rows per dashboard page by default, and at most
UI_PAGE_SIZE: Final = 50
UI_MAX_PAGE_SIZE: Final = 500
#: highest page number a dashboard listing accepts (deep offsets cost the database a scan)
UI_MAX_PAGE: Final = 100_000

# -- request heads the update server and the author service read (issue 14, class 3) --------
#: longest request line (method, target, version); longer answers 414
MAX_REQUEST_LINE: Final = 8 * 1024
#: longest single header line (name, colon, value); longer answers 431
MAX_HEADER_LINE: Final = 8 * 1024
#: most header lines in one request head; more answers 431
MAX_HEADERS: Final = 100
#: largest request head in all (request line, headers, line ends); larger answers 431
MAX_REQUEST_HEAD: Final = 64 * 1024
#: redirects a device follows for one request (HTTPS to HTTPS only; presigned S3 downloads)
MAX_REDIRECTS: Final = 5

# -- fleet operations ------------------------------------------------------------------------
#: largest signed device report the server reads (ours are about 600 bytes)
MAX_REPORT_SIZE: Final = 4 * 1024
#: longest free-text ``detail`` a device report carries
MAX_REPORT_DETAIL: Final = 200
#: a report's monotonic counter stays within JSON's exact integers
MAX_REPORT_COUNTER: Final = 2**53 - 1
#: most stages a rollout may have
MAX_ROLLOUT_STAGES: Final = 10
#: most rows one page of a listing (devices, audit events) returns
MAX_PAGE_SIZE: Final = 500
