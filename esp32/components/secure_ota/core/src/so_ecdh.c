/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Elliptic-curve key agreement for the manifest's ECDH-ES+A256KW (docs/formats.md §4.2) and
 * the image's ECIES-P256 (§3): P-256 ECDH against a received public point (checked to be on
 * the curve first), the JWA Concat KDF (RFC 7518 §4.6.2), AES key unwrap (RFC 3394; Debian's
 * mbedTLS 2.28 is built without MBEDTLS_NIST_KW_C, so it is written here on top of AES-ECB) and
 * HKDF-SHA256 (RFC 5869, on mbedtls_md_hmac: MBEDTLS_HKDF_C is optional in ESP-IDF).
 */
#include <string.h>

#include "so_internal.h"

int so_p256_shared_x(const mbedtls_ecp_keypair *key, const uint8_t pub[64], so_rng_cb rng,
                     void *rng_ctx, uint8_t z[32])
{
    mbedtls_ecp_keypair *kp = (mbedtls_ecp_keypair *)key;
    mbedtls_ecp_group *grp = so_ec_group(kp);
    if (grp->id != MBEDTLS_ECP_DP_SECP256R1) {
        return -1;
    }
    uint8_t point[65];
    point[0] = 0x04;
    memcpy(point + 1, pub, 64);
    mbedtls_ecp_point q;
    mbedtls_mpi shared;
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&shared);
    int ret = -1;
    /* an off-curve or out-of-range point would let a sender learn the device's key */
    if (mbedtls_ecp_point_read_binary(grp, &q, point, sizeof point) == 0 &&
        mbedtls_ecp_check_pubkey(grp, &q) == 0 &&
        mbedtls_ecdh_compute_shared(grp, &shared, &q, so_ec_d(kp), rng, rng_ctx) == 0 &&
        mbedtls_mpi_write_binary(&shared, z, 32) == 0) {
        ret = 0;
    }
    mbedtls_ecp_point_free(&q);
    mbedtls_mpi_free(&shared);
    return ret;
}

void so_concat_kdf_a256kw(const uint8_t z[32], const char *alg, uint8_t kek[32])
{
    static const uint8_t counter[4] = {0, 0, 0, 1};
    static const uint8_t empty_party[4] = {0, 0, 0, 0}; /* apu, apv: absent (length 0) */
    static const uint8_t keydatalen[4] = {0, 0, 1, 0};  /* 256 bits */
    size_t alg_len = strlen(alg);
    uint8_t alg_prefix[4] = {0, 0, (uint8_t)(alg_len >> 8), (uint8_t)alg_len};
    mbedtls_sha256_context sha;
    so_sha256_start(&sha);
    so_sha256_update(&sha, counter, 4);
    so_sha256_update(&sha, z, 32);
    so_sha256_update(&sha, alg_prefix, 4);
    so_sha256_update(&sha, (const uint8_t *)alg, alg_len);
    so_sha256_update(&sha, empty_party, 4);
    so_sha256_update(&sha, empty_party, 4);
    so_sha256_update(&sha, keydatalen, 4);
    so_sha256_finish(&sha, kek);
    mbedtls_sha256_free(&sha);
}

int so_aes_kw_unwrap(const uint8_t kek[32], const uint8_t *in, size_t in_len, uint8_t *out)
{
    static const uint8_t iv[8] = {0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6};
    if (in_len < 24 || in_len % 8 != 0 || in_len > 8 + 64) {
        return -1;
    }
    size_t n = in_len / 8 - 1;
    uint8_t a[8], block[16];
    memcpy(a, in, 8);
    memcpy(out, in + 8, n * 8);
    mbedtls_aes_context aes;
    mbedtls_aes_init(&aes);
    int ret = mbedtls_aes_setkey_dec(&aes, kek, 256);
    for (int j = 5; ret == 0 && j >= 0; j--) {
        for (size_t i = n; ret == 0 && i >= 1; i--) {
            uint64_t t = (uint64_t)n * (uint64_t)j + i;
            memcpy(block, a, 8);
            for (int k = 0; k < 8; k++) {
                block[7 - k] ^= (uint8_t)(t >> (8 * k));
            }
            memcpy(block + 8, out + (i - 1) * 8, 8);
            ret = mbedtls_aes_crypt_ecb(&aes, MBEDTLS_AES_DECRYPT, block, block);
            memcpy(a, block, 8);
            memcpy(out + (i - 1) * 8, block + 8, 8);
        }
    }
    mbedtls_aes_free(&aes);
    so_wipe(block, sizeof block);
    if (ret != 0 || !so_ct_equal(a, iv, 8)) {
        so_wipe(out, n * 8);
        return -1;
    }
    return 0;
}

int so_hkdf_sha256_32(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                      const uint8_t *info, size_t info_len, uint8_t out[32])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    uint8_t prk[32], block[64 + 1];
    if (!md || info_len > 64) {
        return -1;
    }
    int ret = mbedtls_md_hmac(md, salt, salt_len, ikm, ikm_len, prk); /* extract */
    memcpy(block, info, info_len);                                      /* expand, T(1) */
    block[info_len] = 0x01;
    if (ret == 0) {
        ret = mbedtls_md_hmac(md, prk, sizeof prk, block, info_len + 1, out);
    }
    so_wipe(prk, sizeof prk);
    return ret == 0 ? 0 : -1;
}
