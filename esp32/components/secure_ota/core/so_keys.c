/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The device's key ring: decryption keys and the runtime arrays of trusted signing and
 * freshness keys (chosen by key id, so that key rotation only adds keys).
 */
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

#define MAX_PEM (64u * 1024u)

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
        mbedtls_pk_init(&ring->signing[i].pk);
        mbedtls_pk_init(&ring->freshness[i].pk);
    }
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
    for (size_t i = 0; i < SO_MAX_TRUSTED_KEYS; i++) {
        mbedtls_pk_free(&ring->signing[i].pk);
        mbedtls_pk_free(&ring->freshness[i].pk);
    }
    so_wipe(ring, sizeof *ring);
    free(ring);
}

mbedtls_ecp_group_id so_pk_curve(const mbedtls_pk_context *pk)
{
    mbedtls_pk_type_t type = mbedtls_pk_get_type(pk);
    if (type != MBEDTLS_PK_ECKEY && type != MBEDTLS_PK_ECDSA) {
        return MBEDTLS_ECP_DP_NONE;
    }
    return so_ec_group(mbedtls_pk_ec(*pk))->id;
}

static bool is_rsa(const mbedtls_pk_context *pk, size_t bits_a, size_t bits_b)
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

static int key_id(mbedtls_pk_context *pk, char kid[65])
{
    uint8_t der[1200];
    int n = mbedtls_pk_write_pubkey_der(pk, der, sizeof der);
    if (n <= 0) {
        return SO_ERR_KEY;
    }
    so_sha256_hex(der + sizeof der - (size_t)n, (size_t)n, kid);
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
    return is_rsa(pk, 3072, 4096) && mbedtls_pk_can_do(pk, MBEDTLS_PK_RSA) &&
           so_rsa_use_oaep_sha256(mbedtls_pk_rsa(*pk)) == 0;
}

static bool fits_image_key(const mbedtls_pk_context *pk)
{
    return is_rsa(pk, 3072, 3072);
}

static bool fits_signing_key(const mbedtls_pk_context *pk)
{
    return is_rsa(pk, 3072, 4096) || so_pk_curve(pk) == MBEDTLS_ECP_DP_SECP256R1;
}

static bool fits_freshness_key(const mbedtls_pk_context *pk)
{
    return so_pk_curve(pk) == MBEDTLS_ECP_DP_SECP256R1;
}

static bool fits_secure_boot_key(const mbedtls_pk_context *pk)
{
    mbedtls_ecp_group_id curve = so_pk_curve(pk);
    return is_rsa(pk, 3072, 3072) || curve == MBEDTLS_ECP_DP_SECP256R1 ||
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

int so_keyring_set_secure_boot_key(so_keyring_t *ring, const uint8_t *pem, size_t len)
{
    return replace_key(ring, &ring->secure_boot_key, &ring->has_secure_boot_key, pem, len, false,
                       fits_secure_boot_key);
}

static int add_trusted(so_keyring_t *ring, so_trusted_key_t *keys, size_t *count,
                       const uint8_t *pem, size_t len, bool (*fits)(const mbedtls_pk_context *))
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
        ret = key_id(&slot->pk, slot->kid);
    }
    if (ret != SO_OK) {
        mbedtls_pk_free(&slot->pk);
        mbedtls_pk_init(&slot->pk);
        memset(slot->kid, 0, sizeof slot->kid);
        return ret;
    }
    for (size_t i = 0; i < *count; i++) {
        if (strcmp(keys[i].kid, slot->kid) == 0) { /* already trusted: keep one copy */
            mbedtls_pk_free(&slot->pk);
            mbedtls_pk_init(&slot->pk);
            memset(slot->kid, 0, sizeof slot->kid);
            return SO_OK;
        }
    }
    (*count)++;
    return SO_OK;
}

int so_keyring_add_signing_key(so_keyring_t *ring, const uint8_t *pem, size_t len)
{
    return add_trusted(ring, ring->signing, &ring->signing_count, pem, len, fits_signing_key);
}

int so_keyring_add_freshness_key(so_keyring_t *ring, const uint8_t *pem, size_t len)
{
    return add_trusted(ring, ring->freshness, &ring->freshness_count, pem, len,
                       fits_freshness_key);
}

size_t so_keyring_signing_key_count(const so_keyring_t *ring)
{
    return ring ? ring->signing_count : 0;
}

size_t so_keyring_freshness_key_count(const so_keyring_t *ring)
{
    return ring ? ring->freshness_count : 0;
}

bool so_keyring_signing_kid(const so_keyring_t *ring, size_t index, char kid[65])
{
    if (!ring || index >= ring->signing_count) {
        return false;
    }
    memcpy(kid, ring->signing[index].kid, 65);
    return true;
}
