/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The device's key ring: decryption keys, the trusted manifest-signing key set with its version
 * (docs/formats.md §4.4) and the trusted freshness keys, each chosen by key id. Key sets: the
 * ring's own and those reached by rotation, and their storage blob.
 */
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

#define MAX_PEM (64u * 1024u)

static void key_init(so_trusted_key_t *key)
{
    memset(key, 0, sizeof *key);
    mbedtls_pk_init(&key->pk);
}

so_keyset_t *so_keyset_new(void)
{
    so_keyset_t *set = calloc(1, sizeof *set);
    if (set) {
        for (size_t i = 0; i < SO_MAX_TRUSTED_KEYS; i++) {
            key_init(&set->keys[i]);
        }
    }
    return set;
}

void so_keyset_clear(so_keyset_t *set)
{
    for (size_t i = 0; i < SO_MAX_TRUSTED_KEYS; i++) {
        so_trusted_key_clear(&set->keys[i]);
    }
    set->count = 0;
    set->version = 0;
}

void so_keyset_free(so_keyset_t *set)
{
    if (set) {
        so_keyset_clear(set);
        free(set);
    }
}

uint32_t so_keyset_version(const so_keyset_t *set)
{
    return set ? set->version : 0;
}

size_t so_keyset_count(const so_keyset_t *set)
{
    return set ? set->count : 0;
}

bool so_keyset_kid(const so_keyset_t *set, size_t index, char kid[65])
{
    if (!set || !kid || index >= set->count) {
        return false;
    }
    memcpy(kid, set->keys[index].kid, 65);
    return true;
}

const so_trusted_key_t *so_keyset_find(const so_keyset_t *set, const char *kid)
{
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->keys[i].kid, kid) == 0) {
            return &set->keys[i];
        }
    }
    return NULL;
}

int so_keyring_new(so_rng_cb rng, void *rng_ctx, so_keyring_t **out)
{
    if (!rng || !out) {
        return SO_ERR_INVALID_ARG;
    }
    so_keyring_t *ring = calloc(1, sizeof *ring);
    if (!ring) {
        return SO_ERR_NO_MEM;
    }
    ring->rng = rng;
    ring->rng_ctx = rng_ctx;
    mbedtls_pk_init(&ring->manifest_key);
    mbedtls_pk_init(&ring->image_key);
    mbedtls_pk_init(&ring->secure_boot_key);
    for (size_t i = 0; i < SO_MAX_TRUSTED_KEYS; i++) {
        key_init(&ring->signing.keys[i]);
        key_init(&ring->freshness[i]);
    }
    ring->signing.version = 1;
    *out = ring;
    return SO_OK;
}

void so_keyring_free(so_keyring_t *ring)
{
    if (!ring) {
        return;
    }
    mbedtls_pk_free(&ring->manifest_key);
    mbedtls_pk_free(&ring->image_key);
    mbedtls_pk_free(&ring->secure_boot_key);
    so_keyset_clear(&ring->signing);
    for (size_t i = 0; i < SO_MAX_TRUSTED_KEYS; i++) {
        so_trusted_key_clear(&ring->freshness[i]);
    }
    so_wipe(ring, sizeof *ring);
    free(ring);
}

static bool is_rsa_sized(const mbedtls_pk_context *pk, size_t bits_a, size_t bits_b)
{
    if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_RSA) {
        return false;
    }
    size_t bits = mbedtls_pk_get_bitlen(pk);
    return bits == bits_a || bits == bits_b;
}

static bool contains(const uint8_t *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

/* Parse a PEM key into `pk` (freshly initialised). Private keys are parsed as such when
 * `want_private` or when the PEM holds one; public keys otherwise. */
static int parse_pem(so_keyring_t *ring, mbedtls_pk_context *pk, const uint8_t *pem, size_t len,
                     bool want_private)
{
    if (!pem || len == 0 || len > MAX_PEM) {
        return SO_ERR_KEY;
    }
    if (pem[len - 1] == '\0') {
        len--;
    }
    uint8_t *copy = malloc(len + 1);
    if (!copy) {
        return SO_ERR_NO_MEM;
    }
    memcpy(copy, pem, len);
    copy[len] = '\0';
    bool private_pem = contains(copy, len, "PRIVATE KEY");
    int ret;
    if (want_private || private_pem) {
        ret = private_pem ? so_pk_parse_private(pk, copy, len + 1, ring->rng, ring->rng_ctx) : -1;
    } else {
        ret = mbedtls_pk_parse_public_key(pk, copy, len + 1);
    }
    so_wipe(copy, len + 1);
    free(copy);
    if (ret != 0) {
        mbedtls_pk_free(pk);
        mbedtls_pk_init(pk);
        return SO_ERR_KEY;
    }
    return SO_OK;
}

/* The key id, and for signing keys a copy of the canonical DER (what a stored set holds). */
static int key_id(so_trusted_key_t *key, bool keep_der)
{
    uint8_t *der = malloc(SO_MAX_KEY_DER);
    if (!der) {
        return SO_ERR_NO_MEM;
    }
    int n = mbedtls_pk_write_pubkey_der(&key->pk, der, SO_MAX_KEY_DER);
    if (n <= 0) {
        free(der);
        return SO_ERR_KEY;
    }
    memmove(der, der + SO_MAX_KEY_DER - (size_t)n, (size_t)n);
    so_sha256_hex(der, (size_t)n, key->kid);
    if (keep_der) {
        uint8_t *exact = realloc(der, (size_t)n);
        key->der = exact ? exact : der;
        key->der_len = (size_t)n;
    } else {
        free(der);
    }
    return SO_OK;
}

static int replace_key(so_keyring_t *ring, mbedtls_pk_context *slot, bool *has,
                       const uint8_t *pem, size_t len, bool want_private,
                       bool (*fits)(const mbedtls_pk_context *))
{
    if (!ring) {
        return SO_ERR_INVALID_ARG;
    }
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    int ret = parse_pem(ring, &pk, pem, len, want_private);
    if (ret == SO_OK && !fits(&pk)) {
        ret = SO_ERR_KEY;
    }
    if (ret != SO_OK) {
        mbedtls_pk_free(&pk);
        return ret;
    }
    mbedtls_pk_free(slot);
    *slot = pk;
    *has = true;
    return SO_OK;
}

static bool fits_manifest_key(const mbedtls_pk_context *pk)
{
    if (so_pk_curve(pk) == MBEDTLS_ECP_DP_SECP256R1) { /* ECDH-ES+A256KW */
        return true;
    }
    return is_rsa_sized(pk, 3072, 4096) && mbedtls_pk_can_do(pk, MBEDTLS_PK_RSA) &&
           so_rsa_use_oaep_sha256(mbedtls_pk_rsa(*pk)) == 0;
}

static bool fits_image_key(const mbedtls_pk_context *pk)
{
    return is_rsa_sized(pk, 3072, 3072);
}

static bool fits_signing_key(const mbedtls_pk_context *pk)
{
    return is_rsa_sized(pk, 3072, 4096) || so_pk_curve(pk) == MBEDTLS_ECP_DP_SECP256R1;
}

static bool fits_freshness_key(const mbedtls_pk_context *pk)
{
    return so_pk_curve(pk) == MBEDTLS_ECP_DP_SECP256R1;
}

static bool fits_secure_boot_key(const mbedtls_pk_context *pk)
{
    mbedtls_ecp_group_id curve = so_pk_curve(pk);
    return is_rsa_sized(pk, 3072, 3072) || curve == MBEDTLS_ECP_DP_SECP256R1 ||
           curve == MBEDTLS_ECP_DP_SECP384R1;
}

int so_keyring_set_manifest_key(so_keyring_t *ring, const uint8_t *pem, size_t len)
{
    return replace_key(ring, &ring->manifest_key, &ring->has_manifest_key, pem, len, true,
                       fits_manifest_key);
}

int so_keyring_set_image_key(so_keyring_t *ring, const uint8_t *pem, size_t len)
{
    return replace_key(ring, &ring->image_key, &ring->has_image_key, pem, len, true,
                       fits_image_key);
}

int so_keyring_derive_image_key(so_keyring_t *ring, so_hmac_cb hmac, void *hmac_ctx)
{
    static const uint8_t salt[32] = {0x0e, 0x21, 0x60, 0x64, 0x2d, 0xae, 0x76, 0xd3,
                                     0x34, 0x48, 0xe4, 0x3d, 0x77, 0x20, 0x12, 0x3d,
                                     0x9f, 0x3b, 0x1e, 0xce, 0xb8, 0x8e, 0x57, 0x3a,
                                     0x4e, 0x8f, 0x7f, 0xb9, 0x4f, 0xf0, 0xc8, 0x69};
    if (!ring || !hmac) {
        return SO_ERR_INVALID_ARG;
    }
    /* PBKDF2 (RFC 8018), one 32-byte block: U1 = HMAC(salt || INT(1)), Ui = HMAC(Ui-1) */
    uint8_t msg[36], u[32], t[32];
    memcpy(msg, salt, sizeof salt);
    msg[32] = 0;
    msg[33] = 0;
    msg[34] = 0;
    msg[35] = 1;
    int ret = hmac(hmac_ctx, msg, sizeof msg, u) == 0 ? SO_OK : SO_ERR_KEY;
    memcpy(t, u, sizeof t);
    for (int i = 1; ret == SO_OK && i < 2048; i++) {
        if (hmac(hmac_ctx, u, sizeof u, u) != 0) {
            ret = SO_ERR_KEY;
        }
        for (size_t j = 0; j < sizeof t; j++) {
            t[j] ^= u[j];
        }
    }
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    if (ret == SO_OK) {
        ret = SO_ERR_NO_MEM;
        if (mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) == 0) {
            mbedtls_ecp_keypair *kp = mbedtls_pk_ec(pk);
            ret = SO_ERR_KEY;
            if (mbedtls_ecp_group_load(so_ec_group(kp), MBEDTLS_ECP_DP_SECP256R1) == 0 &&
                mbedtls_mpi_read_binary(so_ec_d(kp), t, sizeof t) == 0 &&
                mbedtls_ecp_check_privkey(so_ec_group(kp), so_ec_d(kp)) == 0 &&
                mbedtls_ecp_mul(so_ec_group(kp), so_ec_point(kp), so_ec_d(kp),
                                &so_ec_group(kp)->G, ring->rng, ring->rng_ctx) == 0) {
                ret = SO_OK;
            }
        }
    }
    so_wipe(u, sizeof u);
    so_wipe(t, sizeof t);
    if (ret != SO_OK) {
        mbedtls_pk_free(&pk);
        return ret;
    }
    mbedtls_pk_free(&ring->image_key);
    ring->image_key = pk;
    ring->has_image_key = true;
    return SO_OK;
}

int so_keyring_set_secure_boot_key(so_keyring_t *ring, const uint8_t *pem, size_t len)
{
    return replace_key(ring, &ring->secure_boot_key, &ring->has_secure_boot_key, pem, len, false,
                       fits_secure_boot_key);
}

static int add_trusted(so_keyring_t *ring, so_trusted_key_t *keys, size_t *count,
                       const uint8_t *pem, size_t len, bool (*fits)(const mbedtls_pk_context *),
                       bool keep_der)
{
    if (!ring) {
        return SO_ERR_INVALID_ARG;
    }
    if (*count >= SO_MAX_TRUSTED_KEYS) {
        return SO_ERR_NO_MEM;
    }
    so_trusted_key_t *slot = &keys[*count];
    int ret = parse_pem(ring, &slot->pk, pem, len, false);
    if (ret == SO_OK && !fits(&slot->pk)) {
        ret = SO_ERR_KEY;
    }
    if (ret == SO_OK) {
        ret = key_id(slot, keep_der);
    }
    if (ret != SO_OK) {
        so_trusted_key_clear(slot);
        return ret;
    }
    for (size_t i = 0; i < *count; i++) {
        if (strcmp(keys[i].kid, slot->kid) == 0) { /* already trusted: keep one copy */
            so_trusted_key_clear(slot);
            return SO_OK;
        }
    }
    slot->usable = true;
    (*count)++;
    return SO_OK;
}

int so_keyring_add_signing_key(so_keyring_t *ring, const uint8_t *pem, size_t len)
{
    return add_trusted(ring, ring ? ring->signing.keys : NULL, ring ? &ring->signing.count : NULL,
                       pem, len, fits_signing_key, true);
}

int so_keyring_add_freshness_key(so_keyring_t *ring, const uint8_t *pem, size_t len)
{
    return add_trusted(ring, ring ? ring->freshness : NULL, ring ? &ring->freshness_count : NULL,
                       pem, len, fits_freshness_key, false);
}

size_t so_keyring_signing_key_count(const so_keyring_t *ring)
{
    return ring ? ring->signing.count : 0;
}

size_t so_keyring_freshness_key_count(const so_keyring_t *ring)
{
    return ring ? ring->freshness_count : 0;
}

bool so_keyring_signing_kid(const so_keyring_t *ring, size_t index, char kid[65])
{
    return ring && so_keyset_kid(&ring->signing, index, kid);
}

int so_keyring_set_keyset_version(so_keyring_t *ring, uint32_t version)
{
    if (!ring || version < 1 || version > SO_MAX_KEYSET_VERSION) {
        return SO_ERR_INVALID_ARG;
    }
    ring->signing.version = version;
    return SO_OK;
}

uint32_t so_keyring_keyset_version(const so_keyring_t *ring)
{
    return ring ? ring->signing.version : 0;
}

/* ---- the storage blob of a key set ------------------------------------------------------ */

static const uint8_t BLOB_MAGIC[4] = {'S', 'O', 'K', 'S'};

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

int so_keyset_export(const so_keyset_t *set, uint8_t *out, size_t cap, size_t *len)
{
    if (!set || !len || set->count == 0 || set->count > SO_MAX_TRUSTED_KEYS) {
        return SO_ERR_INVALID_ARG;
    }
    size_t need = 12 + 4;
    for (size_t i = 0; i < set->count; i++) {
        if (!set->keys[i].der || set->keys[i].der_len > SO_MAX_KEY_DER) {
            return SO_ERR_KEY;
        }
        need += 2 + set->keys[i].der_len;
    }
    *len = need;
    if (!out) {
        return SO_OK;
    }
    if (cap < need) {
        return SO_ERR_INVALID_ARG;
    }
    memcpy(out, BLOB_MAGIC, 4);
    put_u32(out + 4, set->version);
    out[8] = (uint8_t)set->count;
    out[9] = out[10] = out[11] = 0;
    size_t k = 12;
    for (size_t i = 0; i < set->count; i++) {
        const so_trusted_key_t *key = &set->keys[i];
        out[k] = (uint8_t)key->der_len;
        out[k + 1] = (uint8_t)(key->der_len >> 8);
        memcpy(out + k + 2, key->der, key->der_len);
        k += 2 + key->der_len;
    }
    put_u32(out + k, so_crc32(out, k));
    return SO_OK;
}

uint32_t so_keyset_blob_version(const uint8_t *blob, size_t len)
{
    if (!blob || len < 16 || len > SO_KEYSET_BLOB_MAX || memcmp(blob, BLOB_MAGIC, 4) != 0 ||
        get_u32(blob + len - 4) != so_crc32(blob, len - 4)) {
        return 0;
    }
    uint32_t version = get_u32(blob + 4);
    return version <= SO_MAX_KEYSET_VERSION ? version : 0;
}

int so_keyring_load_keyset(so_keyring_t *ring, const uint8_t *blob, size_t len)
{
    if (!ring || !blob) {
        return SO_ERR_INVALID_ARG;
    }
    uint32_t version = so_keyset_blob_version(blob, len);
    if (version == 0) {
        return SO_ERR_KEY;
    }
    size_t count = blob[8];
    if (count < 1 || count > SO_MAX_TRUSTED_KEYS || blob[9] || blob[10] || blob[11]) {
        return SO_ERR_KEY;
    }
    so_keyset_t *set = so_keyset_new();
    if (!set) {
        return SO_ERR_NO_MEM;
    }
    set->version = version;
    int ret = SO_OK;
    size_t k = 12, end = len - 4;
    for (size_t i = 0; ret == SO_OK && i < count; i++) {
        size_t der_len = end - k >= 2 ? (size_t)blob[k] | ((size_t)blob[k + 1] << 8) : 0;
        if (der_len == 0 || der_len > end - k - 2) {
            ret = SO_ERR_KEY;
            break;
        }
        so_trusted_key_t *slot = &set->keys[set->count];
        ret = so_spki_parse(blob + k + 2, der_len, slot);
        if (ret == SO_OK && so_keyset_find(set, slot->kid)) {
            so_trusted_key_clear(slot);
        } else if (ret == SO_OK) {
            set->count++;
        }
        k += 2 + der_len;
    }
    if (ret == SO_OK && k != end) {
        ret = SO_ERR_KEY;
    }
    if (ret == SO_OK) {
        so_keyset_clear(&ring->signing);
        ring->signing = *set; /* the keys move: their contexts and DER now belong to the ring */
        free(set);
        return SO_OK;
    }
    so_keyset_free(set);
    return ret;
}
