/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Helpers shared by the files of the portable core (not part of any public API).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cJSON.h"
#include "so_core.h"
#include "so_mbedtls_compat.h"

/* ---- base64url (docs/formats.md §4.1) --------------------------------------------------- */

/** True if every byte is in A-Z a-z 0-9 - _ (an empty span is true). */
bool so_b64url_alphabet(const char *in, size_t len);
/** Bytes a valid segment of `len` characters decodes to. */
size_t so_b64url_decoded_len(size_t len);
/**
 * Decode unpadded base64url. Returns false for a bad alphabet, a length of 1 mod 4 or a too
 * small `cap`. `*canonical` (may be NULL) tells whether the unused low bits were zero.
 */
bool so_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len,
                      bool *canonical);

/* ---- JSON (docs/formats.md §4.1) -------------------------------------------------------- */

/** What the strict parser reports about top-level number members (for the freshness payload). */
typedef struct {
    const char *names[2];   /* decoded top-level member names to look for */
    bool found[2];
    bool int_literal[2];    /* the raw literal had no fraction and no exponent */
} so_json_numinfo_t;

/**
 * Parse JSON under the rules of §4.1 (strict UTF-8, one object, no duplicate names at any
 * depth, depth <= 32, no NaN/Infinity, no \u0000, no lone surrogate). Returns the cJSON tree
 * (free with cJSON_Delete) or NULL; *no_mem tells a NULL caused by memory exhaustion.
 */
cJSON *so_json_parse(const uint8_t *raw, size_t len, so_json_numinfo_t *numinfo, bool *no_mem);

/** Strict UTF-8 (RFC 3629). */
bool so_utf8_valid(const uint8_t *s, size_t len);

/** A name (docs/formats.md §5): 1..64 of [A-Za-z0-9._-], first alnum, no "..". */
bool so_is_name(const char *s);
/** Exactly 64 lowercase hex digits. */
bool so_is_hex64(const char *s);
/** Decode 64 lowercase hex digits. */
bool so_hex64_decode(const char *hex, uint8_t out[32]);
void so_hex_encode(const uint8_t *in, size_t len, char *out);

/** Constant-time comparison. */
bool so_ct_equal(const uint8_t *a, const uint8_t *b, size_t len);
/** Zero memory in a way the compiler keeps. */
void so_wipe(void *p, size_t len);

uint32_t so_crc32(const uint8_t *data, size_t len);

/* ---- keys ---------------------------------------------------------------------------- */

typedef struct {
    char kid[65];
    mbedtls_pk_context pk;
} so_trusted_key_t;

struct so_keyring {
    so_rng_cb rng;
    void *rng_ctx;
    bool has_manifest_key;
    mbedtls_pk_context manifest_key;
    bool has_image_key;
    mbedtls_pk_context image_key;
    bool has_secure_boot_key;
    mbedtls_pk_context secure_boot_key;
    size_t signing_count;
    so_trusted_key_t signing[SO_MAX_TRUSTED_KEYS];
    size_t freshness_count;
    so_trusted_key_t freshness[SO_MAX_TRUSTED_KEYS];
};

/** The EC group id of a P-256/P-384 key, or MBEDTLS_ECP_DP_NONE. */
mbedtls_ecp_group_id so_pk_curve(const mbedtls_pk_context *pk);

/* ---- JWS ------------------------------------------------------------------------------ */

/**
 * Verify a JWS compact token (§4.3) against `keys`; on success *payload (malloc'd, caller frees)
 * holds the decoded payload. Reasons as for the manifest; the caller maps them for freshness.
 */
int so_jws_open(const so_trusted_key_t *keys, size_t key_count, const char *token, size_t len,
                const char *typ, uint8_t **payload, size_t *payload_len, so_manifest_info_t *info);
