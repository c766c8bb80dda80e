/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The one place that knows the differences between mbedTLS 2.28 (Debian, used for the host
 * build and tests) and mbedTLS 3.x (ESP-IDF 5.x). Every other file of the core calls these
 * wrappers and never an API whose signature changed between the two.
 *
 * Differences handled here:
 *  - SHA-256/SHA-512 use the *_ret functions in 2.28 and the plain names in 3.x;
 *  - mbedtls_pk_parse_key takes an RNG in 3.x;
 *  - the RSA encrypt/decrypt/verify functions lost their `mode` argument in 3.x, and
 *    PSS verification lost its RNG;
 *  - mbedtls_rsa_set_padding returns int in 3.x (void in 2.28);
 *  - struct members became private in 3.x (SO_PRIV);
 *  - deterministic ECDSA (RFC 6979) exists only with MBEDTLS_ECDSA_DETERMINISTIC (on in Debian's
 *    2.28 and in ESP-IDF's default mbedTLS config): so_ecdsa_sign_sha256 falls back to a
 *    random nonce without it.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "mbedtls/version.h"
#include "mbedtls/aes.h"
#include "mbedtls/ecdh.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/ecp.h"
#include "mbedtls/gcm.h"
#include "mbedtls/md.h"
#include "mbedtls/pk.h"
#include "mbedtls/rsa.h"
#include "mbedtls/sha256.h"
#include "mbedtls/sha512.h"

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define SO_MBEDTLS_3 1
#define SO_PRIV(member) MBEDTLS_PRIVATE(member)
#else
#define SO_MBEDTLS_3 0
#define SO_PRIV(member) member
#endif

typedef int (*so_rng_fn)(void *ctx, unsigned char *out, size_t len);

/* ---- SHA-256 / SHA-384 -------------------------------------------------------------- */

static inline int so_sha256_start(mbedtls_sha256_context *ctx)
{
    mbedtls_sha256_init(ctx);
#if SO_MBEDTLS_3
    return mbedtls_sha256_starts(ctx, 0);
#else
    return mbedtls_sha256_starts_ret(ctx, 0);
#endif
}

static inline int so_sha256_update(mbedtls_sha256_context *ctx, const uint8_t *data, size_t len)
{
#if SO_MBEDTLS_3
    return mbedtls_sha256_update(ctx, data, len);
#else
    return mbedtls_sha256_update_ret(ctx, data, len);
#endif
}

static inline int so_sha256_finish(mbedtls_sha256_context *ctx, uint8_t out[32])
{
#if SO_MBEDTLS_3
    return mbedtls_sha256_finish(ctx, out);
#else
    return mbedtls_sha256_finish_ret(ctx, out);
#endif
}

static inline int so_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
#if SO_MBEDTLS_3
    return mbedtls_sha256(data, len, out, 0);
#else
    return mbedtls_sha256_ret(data, len, out, 0);
#endif
}

static inline int so_sha384_start(mbedtls_sha512_context *ctx)
{
    mbedtls_sha512_init(ctx);
#if SO_MBEDTLS_3
    return mbedtls_sha512_starts(ctx, 1);
#else
    return mbedtls_sha512_starts_ret(ctx, 1);
#endif
}

static inline int so_sha384_update(mbedtls_sha512_context *ctx, const uint8_t *data, size_t len)
{
#if SO_MBEDTLS_3
    return mbedtls_sha512_update(ctx, data, len);
#else
    return mbedtls_sha512_update_ret(ctx, data, len);
#endif
}

static inline int so_sha384_finish(mbedtls_sha512_context *ctx, uint8_t out[64])
{
#if SO_MBEDTLS_3
    return mbedtls_sha512_finish(ctx, out);
#else
    return mbedtls_sha512_finish_ret(ctx, out);
#endif
}

/* ---- keys ---------------------------------------------------------------------------- */

/* `key` must be NUL-terminated for PEM and `len` must count the NUL (mbedTLS rule). */
static inline int so_pk_parse_private(mbedtls_pk_context *pk, const uint8_t *key, size_t len,
                                      so_rng_fn rng, void *rng_ctx)
{
#if SO_MBEDTLS_3
    return mbedtls_pk_parse_key(pk, key, len, NULL, 0, rng, rng_ctx);
#else
    (void)rng;
    (void)rng_ctx;
    return mbedtls_pk_parse_key(pk, key, len, NULL, 0);
#endif
}

static inline int so_rsa_use_oaep_sha256(mbedtls_rsa_context *rsa)
{
#if SO_MBEDTLS_3
    return mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256);
#else
    mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256);
    return 0;
#endif
}

/* RSAES-OAEP with the hash set by so_rsa_use_oaep_sha256 (SHA-256, MGF1-SHA-256), empty label. */
static inline int so_rsa_oaep_decrypt(mbedtls_rsa_context *rsa, so_rng_fn rng, void *rng_ctx,
                                      const uint8_t *in, uint8_t *out, size_t out_max,
                                      size_t *out_len)
{
#if SO_MBEDTLS_3
    return mbedtls_rsa_rsaes_oaep_decrypt(rsa, rng, rng_ctx, NULL, 0, out_len, in, out, out_max);
#else
    return mbedtls_rsa_rsaes_oaep_decrypt(rsa, rng, rng_ctx, MBEDTLS_RSA_PRIVATE, NULL, 0, out_len,
                                          in, out, out_max);
#endif
}

static inline int so_rsa_pkcs1v15_decrypt(mbedtls_rsa_context *rsa, so_rng_fn rng, void *rng_ctx,
                                          const uint8_t *in, uint8_t *out, size_t out_max,
                                          size_t *out_len)
{
#if SO_MBEDTLS_3
    return mbedtls_rsa_rsaes_pkcs1_v15_decrypt(rsa, rng, rng_ctx, out_len, in, out, out_max);
#else
    return mbedtls_rsa_rsaes_pkcs1_v15_decrypt(rsa, rng, rng_ctx, MBEDTLS_RSA_PRIVATE, out_len, in,
                                               out, out_max);
#endif
}

/* RSASSA-PSS, SHA-256, MGF1-SHA-256, salt length exactly 32; `sig` is mbedtls_rsa_get_len bytes. */
static inline int so_rsa_pss_sha256_verify(mbedtls_rsa_context *rsa, const uint8_t hash[32],
                                           const uint8_t *sig)
{
#if SO_MBEDTLS_3
    return mbedtls_rsa_rsassa_pss_verify_ext(rsa, MBEDTLS_MD_SHA256, 32, hash, MBEDTLS_MD_SHA256,
                                             32, sig);
#else
    return mbedtls_rsa_rsassa_pss_verify_ext(rsa, NULL, NULL, MBEDTLS_RSA_PUBLIC, MBEDTLS_MD_SHA256,
                                             32, hash, MBEDTLS_MD_SHA256, 32, sig);
#endif
}

static inline mbedtls_ecp_group *so_ec_group(mbedtls_ecp_keypair *kp)
{
    return &kp->SO_PRIV(grp);
}

static inline mbedtls_ecp_point *so_ec_point(mbedtls_ecp_keypair *kp)
{
    return &kp->SO_PRIV(Q);
}

/* the private scalar of an EC key pair (a private member in 3.x) */
static inline mbedtls_mpi *so_ec_d(mbedtls_ecp_keypair *kp)
{
    return &kp->SO_PRIV(d);
}

/* ECDSA over a SHA-256 `hash` with the private scalar `d`: RFC 6979 nonce (with `rng` for
 * blinding) when the library has it, else a random nonce from `rng`. 0 or an mbedTLS error. */
static inline int so_ecdsa_sign_sha256(mbedtls_ecp_group *grp, mbedtls_mpi *r, mbedtls_mpi *s,
                                       const mbedtls_mpi *d, const uint8_t hash[32], so_rng_fn rng,
                                       void *rng_ctx)
{
#if defined(MBEDTLS_ECDSA_DETERMINISTIC)
    return mbedtls_ecdsa_sign_det_ext(grp, r, s, d, hash, 32, MBEDTLS_MD_SHA256, rng, rng_ctx);
#else
    return mbedtls_ecdsa_sign(grp, r, s, d, hash, 32, rng, rng_ctx);
#endif
}
