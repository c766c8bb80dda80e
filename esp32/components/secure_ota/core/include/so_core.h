/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * secure_ota portable core: everything that decides whether a release is acceptable, with no
 * ESP-IDF header. Built for ESP-IDF (mbedTLS 3.x) and for the Linux host (mbedTLS 2.28) and
 * tested there. The rules are those of docs/formats.md, in the same order and with the same
 * reason codes as the Python reference (secure_fota.policy).
 *
 * Conventions: functions return 0 (SO_OK) on success, a positive so_reason_t when a release is
 * refused, or a negative SO_ERR_* for a failure that says nothing about the release (no memory,
 * bad argument, bad key). All state lives in caller-owned structures or handles; there is no
 * global mutable state.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Reason codes, numbered in the order of secure_fota/reasons.py (never renumber). */
typedef enum {
    SO_OK = 0,
    SO_REASON_MANIFEST_TOO_LARGE = 1,
    SO_REASON_MANIFEST_MALFORMED,
    SO_REASON_UNSUPPORTED_ALGORITHM,
    SO_REASON_MANIFEST_DECRYPT_FAILED,
    SO_REASON_UNKNOWN_KEY,
    SO_REASON_BAD_SIGNATURE,
    SO_REASON_INVALID_CLAIMS,
    SO_REASON_UNSUPPORTED_FORMAT,
    SO_REASON_WRONG_DEVICE_TYPE,
    SO_REASON_WRONG_CHIP,
    SO_REASON_ALREADY_INSTALLED,
    SO_REASON_ROLLBACK,
    SO_REASON_SECURE_VERSION_TOO_LOW,
    SO_REASON_EXPIRED,
    SO_REASON_IMAGE_TOO_LARGE,
    SO_REASON_FRESHNESS_INVALID,
    SO_REASON_STALE_MANIFEST,
    SO_REASON_IMAGE_SIZE_MISMATCH,
    SO_REASON_ENC_DIGEST_MISMATCH,
    SO_REASON_IMAGE_HEADER_INVALID,
    SO_REASON_IMAGE_DECRYPT_FAILED,
    SO_REASON_IMAGE_DIGEST_MISMATCH,
    SO_REASON_IMAGE_INVALID,
    SO_REASON_SECURE_BOOT_SIGNATURE_INVALID,
    /* the server's answer could not be used (transport; no release was judged) */
    SO_REASON_CONNECTION_FAILED,
    SO_REASON_TIMEOUT,
    SO_REASON_UNEXPECTED_STATUS,
    SO_REASON_BAD_HEADER,
    SO_REASON_UNSUPPORTED_ENCODING,
    SO_REASON_REDIRECT_REFUSED,
    SO_REASON_COUNT
} so_reason_t;

/** Failures that are not a verdict on a release. */
#define SO_ERR_NO_MEM      (-1)
#define SO_ERR_INVALID_ARG (-2)
#define SO_ERR_KEY         (-3) /* a key is missing, unreadable, or of the wrong type/size */
#define SO_ERR_STATE       (-4) /* call out of order */
#define SO_ERR_CRYPTO      (-5) /* the crypto library failed for a reason unrelated to the input */
#define SO_ERR_BUFFER      (-6) /* an output buffer is too small for the result */
#define SO_ERR_FIELD       (-7) /* a report member is out of its bounds (so_report_check names it) */

/** "manifest_too_large", ...; NULL for SO_OK or an unknown value. */
const char *so_reason_name(int reason);

/* ---- limits (src/secure_fota/limits.py) ------------------------------------------------ */
#define SO_MAX_MANIFEST_SIZE   16384u
#define SO_MAX_IMAGE_SIZE      (16u * 1024u * 1024u)
#define SO_MIN_IMAGE_SIZE      (24u + 8u + 256u + 16u)
#define SO_MAX_NAME_LENGTH     64u
#define SO_MAX_SEQ             2147483647u
#define SO_MAX_TOKEN_LENGTH    256u /* a device's bearer token (the server's are 43) */
/** Room for "Bearer " + the longest token + NUL. */
#define SO_AUTH_HEADER_MAX     (7u + SO_MAX_TOKEN_LENGTH + 1u)
#define SO_MAX_DESC_STRING     32u
#define SO_MAX_STATEMENT_SIZE  2048u
#define SO_ENC_HEADER_SIZE     512u
#define SO_MAX_JSON_DEPTH      32
#define SO_MAX_TRUSTED_KEYS    8     /* keys of one kind a device holds (its own set) */
#define SO_MAX_JSON_INT        9007199254740991.0 /* 2^53 - 1 */
#define SO_MAX_JWE_HEADER      1024u /* characters of the encoded JWE protected header (§4.2) */
#define SO_MAX_JWS_HEADER      12288u /* characters of the encoded JWS protected header (§4.3) */
#define SO_MAX_ROTATIONS       8u    /* statements in a manifest's `rot` (§4.4) */
#define SO_MAX_SET_KEYS        4u    /* keys a rotation statement names */
#define SO_MAX_ROTATION_SIZE   8192u /* characters of one rotation statement */
#define SO_MAX_ROTATION_KEY    2048u /* characters of one base64url key in a statement */
#define SO_MAX_KEYSET_VERSION  2147483647u
/** Largest canonical DER SubjectPublicKeyInfo of a key we accept (RSA-4096 with e < n). */
#define SO_MAX_KEY_DER         1100u

/* ---- keys ---------------------------------------------------------------------------- */

typedef int (*so_rng_cb)(void *ctx, unsigned char *out, size_t len);

/** The keys a device holds. Opaque; create with so_keyring_new, free with so_keyring_free. */
typedef struct so_keyring so_keyring_t;

/** Create an empty key ring. `rng` is used for RSA blinding (must be non-NULL). */
int so_keyring_new(so_rng_cb rng, void *rng_ctx, so_keyring_t **out);
void so_keyring_free(so_keyring_t *ring);
/**
 * Manifest decryption key, PEM (len may or may not count a NUL): RSA-3072/4096 (the manifest's
 * JWE is RSA-OAEP-256) or EC P-256 (ECDH-ES+A256KW). The key decides which `alg` is accepted.
 */
int so_keyring_set_manifest_key(so_keyring_t *ring, const uint8_t *pem, size_t len);
/** Image (pre-encryption) key: RSA-3072 private key, PEM. */
int so_keyring_set_image_key(so_keyring_t *ring, const uint8_t *pem, size_t len);

/**
 * HMAC-SHA256 of `msg` under the device's secret HMAC key (on the ESP32-S2/S3/C3/C6/H2/P4: the
 * HMAC peripheral with an eFuse key of purpose HMAC_UP, esp_hmac_calculate). 0 on success.
 */
typedef int (*so_hmac_cb)(void *ctx, const uint8_t *msg, size_t len, uint8_t out[32]);

/**
 * Image key for esp_encrypted_img's ECIES-P256 scheme (docs/formats.md §3), derived as the
 * esp_encrypted_img component (>= 2.4) derives it: the P-256 private scalar is
 * PBKDF2-HMAC-SHA256(password = the HMAC key behind `hmac`, salt = esp_encrypted_img's fixed
 * 32 bytes, 2048 iterations, 32 bytes), read big-endian. The key never exists outside the
 * ring. SO_OK; SO_ERR_KEY if `hmac` fails or the scalar is not in 1..n-1; SO_ERR_NO_MEM.
 * Replaces an RSA image key; ECIES images then decrypt (so_encimg_*, so_image_check_*).
 */
int so_keyring_derive_image_key(so_keyring_t *ring, so_hmac_cb hmac, void *hmac_ctx);
/** Add a trusted manifest-signing public key (RSA-3072/4096 or P-256); up to SO_MAX_TRUSTED_KEYS. */
int so_keyring_add_signing_key(so_keyring_t *ring, const uint8_t *pem, size_t len);
/** Add a trusted freshness public key (P-256). */
int so_keyring_add_freshness_key(so_keyring_t *ring, const uint8_t *pem, size_t len);
/** Secure boot verification key (RSA-3072, P-256 or P-384), public or private PEM. */
int so_keyring_set_secure_boot_key(so_keyring_t *ring, const uint8_t *pem, size_t len);
size_t so_keyring_signing_key_count(const so_keyring_t *ring);
size_t so_keyring_freshness_key_count(const so_keyring_t *ring);
/** Key id (64 lowercase hex + NUL) of the index-th signing key; false if out of range. */
bool so_keyring_signing_kid(const so_keyring_t *ring, size_t index, char kid[65]);

/* ---- key sets and rotation (docs/formats.md §4.4) ----------------------------------------- */

/**
 * The version of the ring's manifest-signing key set: 1 (the default) at provisioning, higher
 * once the device has committed a rotated set. 1..SO_MAX_KEYSET_VERSION.
 */
int so_keyring_set_keyset_version(so_keyring_t *ring, uint32_t version);
uint32_t so_keyring_keyset_version(const so_keyring_t *ring);

/**
 * A set of manifest-signing keys and its version, as reached by walking a manifest's rotation
 * statements (so_manifest_open). Opaque; free with so_keyset_free.
 */
typedef struct so_keyset so_keyset_t;

void so_keyset_free(so_keyset_t *set);
uint32_t so_keyset_version(const so_keyset_t *set);
size_t so_keyset_count(const so_keyset_t *set);
/** Key id of the index-th key; false if out of range. */
bool so_keyset_kid(const so_keyset_t *set, size_t index, char kid[65]);

/**
 * Serialise a key set for storage (NVS). Blob: "SOKS", version (u32 LE), count (u8), 3 zero
 * bytes, count x (DER length u16 LE, canonical DER SubjectPublicKeyInfo), CRC-32 (u32 LE) of
 * everything before it. With `out` NULL only `*len` is set. At most SO_KEYSET_BLOB_MAX bytes.
 */
#define SO_KEYSET_BLOB_MAX (12u + SO_MAX_TRUSTED_KEYS * (2u + SO_MAX_KEY_DER) + 4u)
int so_keyset_export(const so_keyset_t *set, uint8_t *out, size_t cap, size_t *len);

/** The version a blob of so_keyset_export holds (magic and CRC checked), 0 if it is not one. */
uint32_t so_keyset_blob_version(const uint8_t *blob, size_t len);

/**
 * Replace the ring's manifest-signing keys and key-set version by a blob of so_keyset_export.
 * The ring is unchanged unless the whole blob is valid (SO_ERR_KEY otherwise).
 */
int so_keyring_load_keyset(so_keyring_t *ring, const uint8_t *blob, size_t len);

/**
 * Read a DER SubjectPublicKeyInfo the way a rotation statement's key is read (§4.4): an
 * RSA-3072/4096 or P-256 key; on success `kid` is its key id (SHA-256 of the canonical DER).
 * SO_OK, or SO_ERR_KEY for anything else.
 */
int so_spki_key_id(const uint8_t *der, size_t len, char kid[65]);

/* ---- claims (docs/formats.md §5) -------------------------------------------------------- */

typedef enum {
    SO_SB_V1 = 0,
    SO_SB_V2_RSA3072,
    SO_SB_V2_ECDSA256,
    SO_SB_V2_ECDSA384,
} so_secure_boot_t;

const char *so_secure_boot_name(so_secure_boot_t scheme);

typedef struct {
    uint64_t fmt;
    char fw_name[SO_MAX_NAME_LENGTH + 1];
    char device_type[SO_MAX_NAME_LENGTH + 1];
    uint32_t seq;
    char version[SO_MAX_DESC_STRING];
    char project[SO_MAX_DESC_STRING];
    char idf_ver[SO_MAX_DESC_STRING];
    uint32_t secure_version;
    uint16_t chip_id;
    char app_elf_sha256[65];
    uint32_t image_size;
    char image_sha256[65];
    uint32_t enc_size;
    char enc_sha256[65];
    so_secure_boot_t secure_boot;
    uint64_t iat;
    bool has_exp;
    uint64_t exp;
} so_claims_t;

/** Validate a claims JSON document (already known to be a JSON object under §4.1). */
int so_claims_parse(const uint8_t *json, size_t len, so_claims_t *out);

/* ---- the manifest envelope (§4) ------------------------------------------------------ */

typedef struct {
    char kid[65];     /* key id of the key that signed */
    char alg[6];      /* "PS256" or "ES256" */
    /** The key set the signature was checked against: the device's own, or the one reached by
     * walking the JWS header's `rot` (§4.4): its version and key ids. */
    uint32_t keyset_version;
    size_t keyset_count;
    char keyset_kids[SO_MAX_TRUSTED_KEYS][65];
} so_manifest_info_t;

/**
 * Decrypt and verify a manifest and validate its claims (§4, §5). `info` may be NULL.
 *
 * `reached` may be NULL. Otherwise, on SO_OK, *reached is the key set reached by the header's
 * rotation statements when it is newer than the ring's (the caller frees it, and stores it
 * only once the release is installed and confirmed), else NULL. On any other result it is NULL.
 *
 * Memory is bounded by the manifest's size (a few buffers of it) plus at most two key sets
 * while walking; everything is freed before returning.
 */
int so_manifest_open(const so_keyring_t *ring, const uint8_t *token, size_t len, so_claims_t *out,
                     so_manifest_info_t *info, so_keyset_t **reached);

/* ---- freshness (§7) ------------------------------------------------------------------ */

/** A statement's answer: "newest" (200 and 304) or "none" (404). */
typedef enum { SO_ANSWER_NEWEST = 1, SO_ANSWER_NONE = 2 } so_answer_t;

/** A freshness statement's payload, validated (§7 step 1). */
typedef struct {
    so_answer_t answer;
    char device_type[SO_MAX_NAME_LENGTH + 1];
    char nonce[65];
    uint64_t iat;
    uint32_t seq;               /* answer newest only: the server's id of its newest release */
    char manifest_sha256[65];   /* answer newest only; "" otherwise */
    bool has_device_id;
    char device_id[SO_MAX_NAME_LENGTH + 1];
} so_statement_t;

/**
 * Validate a statement's payload (JSON): `answer` "newest" with `seq` and `manifest_sha256`,
 * or "none" without them; `device_type`, `nonce`, `iat`; optional `device_id`; no other
 * member. SO_OK, SO_REASON_FRESHNESS_INVALID or SO_ERR_NO_MEM.
 */
int so_statement_parse(const uint8_t *payload, size_t len, so_statement_t *out);

/** Verify a statement (JWS, trusted freshness keys) and validate its payload. */
int so_statement_open(const so_keyring_t *ring, const uint8_t *statement, size_t statement_len,
                      so_statement_t *out);

/**
 * Check the server's statement for a poll answered with a manifest (HTTP 200). `statement`
 * may be NULL (absent). `manifest` is the manifest the device is judging. `device_id` is the
 * device's own id (a §5 name, the one its poll sent as deviceId), or NULL or "" for a device
 * without one. The statement must be for this nonce and device type, and its `device_id`
 * exactly (byte for byte) `device_id` — absent only for a device without an id, which refuses
 * any statement naming one — else SO_REASON_FRESHNESS_INVALID (a statement naming no device may
 * answer a poll stripped of its id); and answer "newest" for exactly this manifest — else
 * SO_REASON_STALE_MANIFEST. Its `seq` is informational (the server's id of the release).
 * SO_ERR_INVALID_ARG for a `device_id` that is not a name.
 */
int so_freshness_check(const so_keyring_t *ring, const uint8_t *statement, size_t statement_len,
                       const uint8_t *manifest, size_t manifest_len, const char *nonce,
                       const char *device_type, const char *device_id);

/**
 * The same check when the device holds only the manifest's SHA-256 (hex): after an HTTP 304
 * answer to If-None-Match (the judged record's sha256_hex).
 */
int so_freshness_check_digest(const so_keyring_t *ring, const uint8_t *statement,
                              size_t statement_len, const char *manifest_sha256,
                              const char *nonce, const char *device_type, const char *device_id);

/**
 * The check for a poll answered "no release for this type" (HTTP 404): the statement must be
 * for this poll and device as above (else SO_REASON_FRESHNESS_INVALID) and answer "none" (else
 * SO_REASON_STALE_MANIFEST: the server vouches for a release that was not served).
 */
int so_freshness_check_none(const so_keyring_t *ring, const uint8_t *statement,
                            size_t statement_len, const char *nonce, const char *device_type,
                            const char *device_id);

/** True for a name of docs/formats.md §5 (device types, firmware names). */
bool so_name_ok(const char *name);

/* ---- the decision (§6) --------------------------------------------------------------- */

typedef struct {
    const char *device_type;
    uint32_t chip_id;
    int64_t installed_seq;
    int64_t secure_version;   /* the device's anti-rollback eFuse value */
    uint32_t slot_size;       /* 0 means SO_MAX_IMAGE_SIZE */
    bool has_clock;           /* true when `now` is trusted */
    uint64_t now;
} so_device_facts_t;

/**
 * The rules of §6 in order: SO_OK (an update to install), the first rule's reason, or
 * SO_ERR_INVALID_ARG. The installed release (`seq` equal to facts->installed_seq) is
 * SO_REASON_ALREADY_INSTALLED, or SO_REASON_EXPIRED once a trusted clock is at or past its `exp`
 * (rule 3: the server keeps offering a release its author no longer vouches for, so newer ones
 * are being withheld).
 */
int so_decide(const so_claims_t *claims, const so_device_facts_t *facts);

/**
 * What a device keeps of the last manifest it judged SO_REASON_ALREADY_INSTALLED, so that its
 * next poll can send If-None-Match and an HTTP 304 answer can be judged without the manifest
 * (so_decide_unchanged). The caller stores it (NVS).
 */
typedef struct {
    char sha256_hex[65]; /* SHA-256 of the manifest as received, lowercase hex (its ETag) */
    bool has_exp;        /* the claims' exp, if they have one */
    uint64_t exp;
    uint32_t seq;        /* the claims' seq (the installed release's, when it was judged) */
} so_judged_t;

/**
 * The record of `manifest` (the bytes so_manifest_open took), whose claims are `claims`.
 * SO_OK, or SO_ERR_INVALID_ARG for a NULL argument.
 */
int so_judged_init(so_judged_t *out, const uint8_t *manifest, size_t len, const so_claims_t *claims);

/**
 * The decision (§6) on an HTTP 304 answer to If-None-Match: the server's newest manifest is
 * still `judged`. Rules 3 and 4 again, as so_decide would apply them to that manifest now (the
 * reference judges its cached copy anew): its seq below the installed one is
 * SO_REASON_ROLLBACK (a server vouching for an older release than the device runs); equal is
 * SO_REASON_EXPIRED when a trusted clock is at or past `exp`, else
 * SO_REASON_ALREADY_INSTALLED. A seq above the installed one was never judged "already
 * installed": SO_ERR_STATE (poll without If-None-Match). SO_ERR_INVALID_ARG for a NULL
 * argument. With freshness keys, check the statement first (so_freshness_check_digest with
 * judged->sha256_hex), as for a manifest received.
 */
int so_decide_unchanged(const so_judged_t *judged, const so_device_facts_t *facts);

/**
 * The decision on an HTTP 404 ("no release for this type"; with freshness keys, after
 * so_freshness_check_none): SO_REASON_EXPIRED when `installed` (the record of the installed
 * release's manifest, or NULL) has the installed seq and a trusted clock is at or past its
 * `exp` — a server withholding every release must not hold the device past the author's
 * bound — else SO_REASON_ALREADY_INSTALLED (nothing to do). SO_ERR_INVALID_ARG for NULL facts.
 */
int so_decide_none(const so_judged_t *installed, const so_device_facts_t *facts);

/* ---- GCM and the esp_encrypted_img stream (§3) ------------------------------------------- */

/** AES-256-GCM decryption, streaming, with a state that can be rebuilt from plaintext. */
typedef struct so_gcm so_gcm_t;

/** Parsed esp_encrypted_img header. */
typedef struct {
    uint8_t wrapped_key[384];
    uint8_t iv[16];
    uint32_t bin_size;
    uint8_t tag[16];
} so_enc_header_t;

/** Parse and check the 512-byte header (magic, bin_size 1..16 MiB, reserved zero). */
int so_enc_header_parse(const uint8_t raw[SO_ENC_HEADER_SIZE], so_enc_header_t *out);

/**
 * Streaming decryptor for esp_encrypted_img (RSA-3072 scheme), resumable: after an interruption
 * at plaintext offset N, call so_encimg_resume with the header and feed the N plaintext bytes
 * already written through so_encimg_replay; it re-encrypts them (CTR) to rebuild the GHASH
 * state, then continue with so_encimg_update from file offset 512 + N (HTTP Range request).
 */
typedef struct so_encimg so_encimg_t;

int so_encimg_new(const so_keyring_t *ring, so_encimg_t **out);
void so_encimg_free(so_encimg_t *dec);
/** Feed file bytes; plaintext is written to `out` (capacity `out_cap` ≥ len), count in *out_len. */
int so_encimg_update(so_encimg_t *dec, const uint8_t *in, size_t len, uint8_t *out, size_t out_cap,
                     size_t *out_len);
/** Start a resumed stream from the file's header. */
int so_encimg_resume(so_encimg_t *dec, const uint8_t header[SO_ENC_HEADER_SIZE]);
/** Replay plaintext already written; `cipher_out` (may be NULL) receives the ciphertext. */
int so_encimg_replay(so_encimg_t *dec, const uint8_t *plain, size_t len, uint8_t *cipher_out);
/** After all bin_size bytes: verify the tag. 0, or a reason (header/decrypt failure). */
int so_encimg_finish(so_encimg_t *dec);
/** Plaintext bytes produced (or replayed) so far. */
uint64_t so_encimg_position(const so_encimg_t *dec);
/** The parsed header once 512 bytes have arrived, else NULL. */
const so_enc_header_t *so_encimg_header(const so_encimg_t *dec);

/* ---- image checks (§8) --------------------------------------------------------------- */

typedef struct so_image_check so_image_check_t;

/**
 * One pass over NAME-N.bin against verified claims. With `external_decrypt` the core does not
 * decrypt (esp_encrypted_img does, on the device): feed the encrypted bytes to
 * so_image_check_update and the plaintext it produced to so_image_check_plain, and pass its
 * verdict to so_image_check_finish.
 */
int so_image_check_new(const so_keyring_t *ring, const so_claims_t *claims, bool external_decrypt,
                       so_image_check_t **out);
void so_image_check_free(so_image_check_t *check);
/** Encrypted bytes in; plaintext (internal decryption) out, as for so_encimg_update. */
int so_image_check_update(so_image_check_t *check, const uint8_t *in, size_t len, uint8_t *out,
                          size_t out_cap, size_t *out_len);
/** Plaintext from an external decryptor (only with external_decrypt). */
int so_image_check_plain(so_image_check_t *check, const uint8_t *plain, size_t len);
/** Resume (internal decryption only): the 512-byte header, then so_image_check_replay. */
int so_image_check_resume(so_image_check_t *check, const uint8_t header[SO_ENC_HEADER_SIZE]);
int so_image_check_replay(so_image_check_t *check, const uint8_t *plain, size_t len);
/** Bytes of the .bin accounted for so far (received plus replayed). */
uint64_t so_image_check_received(const so_image_check_t *check);
/**
 * §8 steps 1..7 in order. `external_ok` is the external decryptor's verdict (ignored
 * otherwise).
 */
int so_image_check_finish(so_image_check_t *check, bool external_ok);

/* ---- the signed app image (§1, §2) -------------------------------------------------- */

/** Streaming check of the decrypted image: structure, claims match, secure-boot signature. */
typedef struct so_app_check so_app_check_t;

int so_app_check_new(const so_keyring_t *ring, const so_claims_t *claims, so_app_check_t **out);
void so_app_check_free(so_app_check_t *app);
void so_app_check_update(so_app_check_t *app, const uint8_t *data, size_t len);
/** §8 steps 6 and 7: 0, SO_REASON_IMAGE_INVALID or SO_REASON_SECURE_BOOT_SIGNATURE_INVALID. */
int so_app_check_finish(so_app_check_t *app);

/* ---- the server's answer headers --------------------------------------------------------- */

/**
 * A header holding a release id (X-Fota-Release): 1 to 10 ASCII digits, value 1..SO_MAX_SEQ,
 * nothing else (no sign, space or other digits). SO_OK and *out, or SO_REASON_BAD_HEADER.
 */
int so_header_seq(const char *value, uint32_t *out);

/**
 * A Content-Encoding header: SO_OK when absent (NULL), empty or "identity" (any case, comma
 * lists of those), else SO_REASON_UNSUPPORTED_ENCODING (the device asked for identity and
 * inflates nothing).
 */
int so_header_identity(const char *value);

/* ---- the device's request headers ------------------------------------------------------- */

/**
 * The Authorization header value a device sends when the server's device endpoints need a
 * token (device_auth = device-type-token or device-token): "Bearer " + `token` in `out`.
 * The token must be 1..SO_MAX_TOKEN_LENGTH characters of RFC 7235's token68 (A-Z a-z 0-9
 * - . _ ~ + / then at most trailing '='), so that nothing (a space, CR, LF) can end the header
 * early. SO_OK; SO_ERR_INVALID_ARG for NULL, an empty, overlong or ill-formed token, or an
 * `out` too small (then `out` holds "" when cap > 0).
 */
int so_bearer_header(const char *token, char *out, size_t cap);

/** Most redirects a device follows for one request (limits.py MAX_REDIRECTS). */
#define SO_MAX_REDIRECTS 5u

/**
 * A redirect's Location: SO_OK for an absolute "https://" URL without credentials
 * (user:password@) or a path on the same server ("/..." but not "//..."); else
 * SO_REASON_REDIRECT_REFUSED (plain HTTP, another scheme, credentials, empty, control
 * characters or spaces).
 */
int so_redirect_ok(const char *location);

/* ---- device reports (docs/formats.md §11) -------------------------------------------------- */

/*
 * A report is a JWS compact token (ES256, header {"alg":"ES256","kid":..,"typ":"fota-report+jwt"})
 * signed by the device's own P-256 report key, whose payload is the JSON object of §11 with its
 * members in sorted order and no whitespace: the bytes the Python reference
 * (secure_fota.crypto.report.Report.to_json) writes for the same report.
 */
#define SO_MAX_REPORT_SIZE     4096u /* a report token, as the server bounds it (limits.py) */
#define SO_MAX_REPORT_DETAIL   200u  /* characters of `detail` */
#define SO_MAX_REPORT_VERSION  (SO_MAX_DESC_STRING - 1u) /* characters of `version` */
#define SO_MAX_SECURE_VERSION  255u
#define SO_MAX_REPORT_COUNTER  9007199254740991ull /* 2^53 - 1 */
/** Characters of `pub`: base64url of the 91-byte DER SubjectPublicKeyInfo of a P-256 key. */
#define SO_REPORT_PUB_LEN      122u
/**
 * Room for the longest report so_report_sign can produce (every string at its limit, `detail`
 * and `version` made of characters JSON escapes) plus its NUL: 1476 + 1 bytes, rounded up.
 */
#define SO_REPORT_TOKEN_MAX    1536u
/** Size of a report key blob (so_report_key_export). */
#define SO_REPORT_KEY_BLOB_SIZE 44u

typedef enum {
    SO_EVENT_CHECKING = 0,
    SO_EVENT_DOWNLOADING,
    SO_EVENT_INSTALLED,   /* written and set to boot, not yet booted */
    SO_EVENT_CONFIRMED,   /* booted, self-test passed, marked valid: the only success */
    SO_EVENT_ROLLED_BACK,
    SO_EVENT_REJECTED,    /* with a reason code */
    SO_EVENT_FAILED,      /* with a detail */
    SO_EVENT_COUNT
} so_event_t;

/** "checking", "downloading", ...; NULL for a value out of range. */
const char *so_event_name(int event);

/** The members of one report (§11) except `pub`, which comes from the signing key. */
typedef struct {
    const char *device_id;   /* a §5 name, at most SO_MAX_NAME_LENGTH */
    const char *device_type; /* a §5 name */
    so_event_t event;
    int reason;              /* 0: null; else an so_reason_t (required for SO_EVENT_REJECTED) */
    const char *detail;      /* NULL or printable ASCII (0x20..0x7e), at most SO_MAX_REPORT_DETAIL */
    uint32_t seq;            /* the release running now, 0..SO_MAX_SEQ */
    uint32_t secure_version; /* 0..SO_MAX_SECURE_VERSION */
    const char *version;     /* printable ASCII, at most SO_MAX_REPORT_VERSION */
    uint32_t release;        /* the release this event is about (0: none), 0..SO_MAX_SEQ */
    uint64_t counter;        /* 1..SO_MAX_REPORT_COUNTER, above every value used before */
} so_report_t;

/**
 * SO_OK if every member is within its bounds; else SO_ERR_FIELD and, when `field` is not NULL,
 * *field the name of the first member out of bounds ("device_id", "reason", ...); SO_ERR_INVALID_ARG
 * for a NULL report.
 */
int so_report_check(const so_report_t *report, const char **field);

/** A device's report key (P-256 private key). Opaque; free with so_report_key_free. */
typedef struct so_report_key so_report_key_t;

/** A new random report key; `rng` must fill its buffer with cryptographically secure bytes. */
int so_report_key_generate(so_rng_cb rng, void *rng_ctx, so_report_key_t **out);

/**
 * Serialise a report key for storage (NVS): "SORK", format 1 (u8), 3 zero bytes, the private
 * scalar (32 bytes, big-endian), CRC-32 (u32 LE) of everything before it: exactly
 * SO_REPORT_KEY_BLOB_SIZE bytes. SO_OK, SO_ERR_BUFFER (cap too small) or SO_ERR_INVALID_ARG.
 */
int so_report_key_export(const so_report_key_t *key, uint8_t *out, size_t cap, size_t *len);

/**
 * A report key from a blob of so_report_key_export. SO_ERR_KEY for anything else: another
 * length, magic or format, a bad CRC, nonzero padding, or a scalar outside 1..n-1.
 * `rng` is used for the blinding of the public-key computation.
 */
int so_report_key_load(const uint8_t *blob, size_t len, so_rng_cb rng, void *rng_ctx,
                       so_report_key_t **out);
void so_report_key_free(so_report_key_t *key);

/** The key's id (§10: lowercase hex SHA-256 of its DER SubjectPublicKeyInfo) and NUL. */
void so_report_key_kid(const so_report_key_t *key, char kid[65]);
/** The key's `pub` member: SO_REPORT_PUB_LEN characters of base64url SPKI DER, and NUL. */
void so_report_key_pub(const so_report_key_t *key, char pub[SO_REPORT_PUB_LEN + 1]);

/**
 * The payload JSON of `report` signed by `key` (its `pub`), NUL-terminated in `out`, *len
 * characters (without the NUL; `len` may be NULL). SO_OK; SO_ERR_FIELD (see so_report_check);
 * SO_ERR_BUFFER when `cap` is too small; SO_ERR_INVALID_ARG for NULL arguments.
 */
int so_report_payload(const so_report_key_t *key, const so_report_t *report, char *out, size_t cap,
                      size_t *len);

/**
 * Sign `report` (§11): the JWS compact token, NUL-terminated, in `out` (SO_REPORT_TOKEN_MAX bytes
 * are always enough), *len characters (may be NULL). ECDSA P-256 / SHA-256 with a deterministic
 * nonce (RFC 6979) where mbedTLS has MBEDTLS_ECDSA_DETERMINISTIC (`rng` then blinds), else a
 * random one from `rng`; the signature is raw r || s, base64url. Results as for
 * so_report_payload, plus SO_ERR_CRYPTO if signing fails and SO_ERR_NO_MEM. On any error `out`
 * holds "" (cap > 0). The caller must have saved `counter` before signing (§11).
 */
int so_report_sign(const so_report_key_t *key, so_rng_cb rng, void *rng_ctx,
                   const so_report_t *report, char *out, size_t cap, size_t *len);

/* ---- helpers --------------------------------------------------------------------------- */

/** Lowercase hex SHA-256 of `data`. */
void so_sha256_hex(const uint8_t *data, size_t len, char hex[65]);

#ifdef __cplusplus
}
#endif
