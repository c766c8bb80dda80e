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
 * Decode canonical unpadded base64url (§4.1). Returns false for a bad alphabet, a length of
 * 1 mod 4, non-zero unused low bits in the last character, or a too small `cap`.
 */
bool so_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/**
 * Encode `len` bytes as unpadded base64url into `out` with a NUL: the number of characters
 * written (without the NUL), or 0 when `len` is 0 or `cap` cannot hold them and the NUL.
 */
size_t so_b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap);

/* ---- JSON (docs/formats.md §4.1) -------------------------------------------------------- */

cJSON *so_json_parse(const uint8_t *raw, size_t len, bool *no_mem);

/**
 * A JSON "integer" (docs/formats.md §5): a number with an integral value (7, 7.0, 7e0), never a
 * boolean, within [low, high] (both within +-2^53). Member `name` of `object`.
 */
bool so_json_get_int(const cJSON *object, const char *name, double low, double high,
                     uint64_t *out);

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

/* ---- the app image check (so_appimg.c) ------------------------------------------------- */

/**
 * SHA-256 of every byte fed to `app` so far (a copy of its running hash is finished; `app`
 * is unchanged). Bytes fed after so_app_check_finish are not counted.
 */
void so_app_check_sha256(const so_app_check_t *app, uint8_t out[32]);

/* ---- keys ---------------------------------------------------------------------------- */

typedef struct {
    char kid[65];
    mbedtls_pk_context pk;
    /** false for a key that can be named but never verifies (an RSA key with an even modulus,
     * which the reference reads but cannot verify with either) */
    bool usable;
    /** canonical DER SubjectPublicKeyInfo (signing keys only; malloc'd), else NULL */
    uint8_t *der;
    size_t der_len;
} so_trusted_key_t;

struct so_keyset {
    uint32_t version;
    size_t count;
    so_trusted_key_t keys[SO_MAX_TRUSTED_KEYS];
};

struct so_keyring {
    so_rng_cb rng;
    void *rng_ctx;
    bool has_manifest_key;
    mbedtls_pk_context manifest_key;
    bool has_image_key;
    mbedtls_pk_context image_key;
    bool has_secure_boot_key;
    mbedtls_pk_context secure_boot_key;
    so_keyset_t signing;
    size_t freshness_count;
    so_trusted_key_t freshness[SO_MAX_TRUSTED_KEYS];
};

/** A fresh, empty key set (version 0) on the heap; NULL without memory. */
so_keyset_t *so_keyset_new(void);
/** Free the keys of a set (not the set itself) and empty it. */
void so_keyset_clear(so_keyset_t *set);
/** The key with id `kid` in `set`, or NULL. */
const so_trusted_key_t *so_keyset_find(const so_keyset_t *set, const char *kid);

/* ---- public keys (so_spki.c; uses nothing of so_keys.c) --------------------------------- */

/** The EC group id of a P-256/P-384 key, or MBEDTLS_ECP_DP_NONE. */
mbedtls_ecp_group_id so_pk_curve(const mbedtls_pk_context *pk);
/** Free one key's contents and re-initialise it. */
void so_trusted_key_clear(so_trusted_key_t *key);

/**
 * Read a DER SubjectPublicKeyInfo of a manifest-signing key (RSA-3072/4096 or P-256) as the
 * reference does (strict DER; RSA e odd, 3 <= e < n; EC point uncompressed, compressed or
 * hybrid, on the curve) into `key` (initialised by the caller): canonical DER, key id, and a
 * verification context. SO_OK, SO_ERR_KEY (not such a key) or SO_ERR_NO_MEM.
 */
int so_spki_parse(const uint8_t *der, size_t len, so_trusted_key_t *key);

/* ---- ECDH-ES+A256KW (so_ecdh.c, §4.2) --------------------------------------------------- */

/**
 * The x coordinate of `key`'s private scalar times the P-256 point X||Y `pub` (64 bytes, big
 * endian), after checking that the point is on the curve. 0, or -1 (not a P-256 key, point
 * not on the curve, or an mbedTLS failure).
 */
int so_p256_shared_x(const mbedtls_ecp_keypair *key, const uint8_t pub[64], so_rng_cb rng,
                     void *rng_ctx, uint8_t z[32]);
/** JWA Concat KDF (RFC 7518 §4.6.2), SHA-256, 256-bit key, AlgorithmID `alg`, no apu/apv. */
void so_concat_kdf_a256kw(const uint8_t z[32], const char *alg, uint8_t kek[32]);
/** AES-256 key unwrap (RFC 3394): `in_len` - 8 bytes to `out`; 0, or -1 (integrity check). */
int so_aes_kw_unwrap(const uint8_t kek[32], const uint8_t *in, size_t in_len, uint8_t *out);
/** HKDF-SHA256 (RFC 5869) with a 32-byte output and `info` of at most 64 bytes; 0 or -1. */
int so_hkdf_sha256_32(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                      const uint8_t *info, size_t info_len, uint8_t out[32]);

/* ---- JWS ------------------------------------------------------------------------------ */

/** Header members a JWS may have (docs/formats.md §4.3 step 5). */
#define SO_JWS_MEMBERS_BASIC    0u /* alg, kid, typ */
#define SO_JWS_MEMBERS_MANIFEST 1u /* alg, kid, typ, rot */

typedef struct {
    const char *p;
    size_t n;
} so_span_t;

/** A JWS compact token split into its three parts, with its decoded protected header. */
typedef struct {
    so_span_t parts[3];
    cJSON *header;
} so_jws_t;

/**
 * §4.3 steps 1-2: ASCII, three base64url parts, header at most SO_MAX_JWS_HEADER characters,
 * canonical base64url, JSON rules. SO_OK (free with so_jws_free), a reason, or SO_ERR_NO_MEM.
 */
int so_jws_parse(const char *token, size_t len, so_jws_t *jws);
void so_jws_free(so_jws_t *jws);

/**
 * §4.3 steps 3-8 against `keys`: on success *payload (malloc'd, caller frees) holds the
 * decoded payload. Reasons as for the manifest; the caller maps them for freshness.
 */
int so_jws_verify(const so_jws_t *jws, const so_trusted_key_t *keys, size_t key_count,
                  const char *typ, unsigned members, uint8_t **payload, size_t *payload_len,
                  so_manifest_info_t *info);

/** so_jws_parse + so_jws_verify. */
int so_jws_open(const so_trusted_key_t *keys, size_t key_count, const char *token, size_t len,
                const char *typ, unsigned members, uint8_t **payload, size_t *payload_len,
                so_manifest_info_t *info);

/**
 * §4.3 after decryption: the inner JWS of a manifest (`rot` checked and walked), then the
 * claims. `reached` as for so_manifest_open (may be NULL).
 */
int so_signed_manifest_open(const so_keyring_t *ring, const char *token, size_t len,
                            so_claims_t *out, so_manifest_info_t *info, so_keyset_t **reached);

/* ---- key rotation (§4.4) ---------------------------------------------------------------- */

/** True if `rot` is an array of 1 to SO_MAX_ROTATIONS strings. */
bool so_rotation_shape_ok(const cJSON *rot);

/**
 * Walk the statements of `rot` (shape already checked) from `own`. *reached is NULL when the
 * walk got no further than `own`, else a new set (caller frees). Walking never rejects:
 * SO_OK, or SO_ERR_NO_MEM.
 */
int so_rotation_walk(const so_keyset_t *own, const cJSON *rot, so_keyset_t **reached);
