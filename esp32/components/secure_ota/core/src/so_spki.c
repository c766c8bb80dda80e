/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * DER SubjectPublicKeyInfo of the manifest-signing keys a key-rotation statement names
 * (docs/formats.md §4.4), read as the reference reads them (Python `cryptography`, then the
 * manifest-signing role check):
 *
 *  - strict DER: minimal lengths, minimal positive INTEGERs, BIT STRINGs without unused bits,
 *    nothing after the structure;
 *  - RSA: rsaEncryption with NULL or absent parameters; a 3072- or 4096-bit modulus; an odd
 *    exponent with 3 <= e < n (an even modulus is read, but no signature ever verifies with it);
 *  - EC: id-ecPublicKey on the named curve P-256; the point uncompressed, compressed or hybrid,
 *    on the curve.
 *
 * The key id is the SHA-256 of the canonical DER (rsaEncryption with NULL parameters, the
 * point uncompressed), which is what the reference hashes after re-encoding the key.
 *
 * Also the helpers on one trusted key that the key ring (so_keys.c) builds on: so_pk_curve and
 * so_trusted_key_clear. Nothing here uses so_keys.c.
 */
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

/* a base64url key of SO_MAX_ROTATION_KEY characters decodes to at most this many bytes */
#define MAX_INPUT_DER ((SO_MAX_ROTATION_KEY / 4u) * 3u)

static const uint8_t OID_RSA[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
static const uint8_t OID_EC[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const uint8_t OID_P256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

/* The canonical SPKI prefix of a P-256 key, up to the 65-byte uncompressed point. */
static const uint8_t EC_PREFIX[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
                                    0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
                                    0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
/* AlgorithmIdentifier rsaEncryption with NULL parameters. */
static const uint8_t RSA_ALG[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                  0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};

typedef struct {
    const uint8_t *p;
    size_t n;
} der_t;

/* The next TLV of `in` with tag `tag` (minimal definite length); advances `in`. */
static bool der_next(der_t *in, uint8_t tag, der_t *content)
{
    if (in->n < 2 || in->p[0] != tag) {
        return false;
    }
    size_t len, hdr;
    uint8_t b = in->p[1];
    if (b < 0x80) {
        len = b;
        hdr = 2;
    } else if (b == 0x81) {
        if (in->n < 3 || in->p[2] < 0x80) {
            return false;
        }
        len = in->p[2];
        hdr = 3;
    } else if (b == 0x82) {
        if (in->n < 4) {
            return false;
        }
        len = ((size_t)in->p[2] << 8) | in->p[3];
        if (len < 0x100) {
            return false;
        }
        hdr = 4;
    } else {
        return false; /* indefinite, or longer than any input we accept */
    }
    if (len > in->n - hdr) {
        return false;
    }
    content->p = in->p + hdr;
    content->n = len;
    in->p += hdr + len;
    in->n -= hdr + len;
    return true;
}

static bool der_is(der_t d, const uint8_t *bytes, size_t n)
{
    return d.n == n && memcmp(d.p, bytes, n) == 0;
}

/* A minimal non-negative INTEGER; `mag` is its magnitude without the sign byte. */
static bool der_uint(der_t *in, der_t *mag)
{
    der_t c;
    if (!der_next(in, 0x02, &c) || c.n == 0 || (c.p[0] & 0x80)) {
        return false;
    }
    if (c.n > 1 && c.p[0] == 0 && !(c.p[1] & 0x80)) {
        return false;
    }
    if (c.p[0] == 0) {
        c.p++;
        c.n--;
    }
    *mag = c;
    return true;
}

static size_t bit_length(der_t mag)
{
    if (mag.n == 0) {
        return 0;
    }
    size_t bits = 8 * (mag.n - 1);
    for (uint8_t top = mag.p[0]; top; top >>= 1) {
        bits++;
    }
    return bits;
}

/* Magnitudes without leading zeros: a < b. */
static bool less_than(der_t a, der_t b)
{
    if (a.n != b.n) {
        return a.n < b.n;
    }
    return memcmp(a.p, b.p, a.n) < 0;
}

static size_t put_len(uint8_t *out, size_t len)
{
    if (len < 0x80) {
        out[0] = (uint8_t)len;
        return 1;
    }
    if (len < 0x100) {
        out[0] = 0x81;
        out[1] = (uint8_t)len;
        return 2;
    }
    out[0] = 0x82;
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)len;
    return 3;
}

static size_t len_size(size_t len)
{
    return len < 0x80 ? 1 : len < 0x100 ? 2 : 3;
}

static size_t int_size(der_t mag)
{
    size_t body = mag.n + ((mag.p[0] & 0x80) ? 1 : 0);
    return 1 + len_size(body) + body;
}

static size_t put_int(uint8_t *out, der_t mag)
{
    size_t pad = (mag.p[0] & 0x80) ? 1 : 0, k = 0;
    out[k++] = 0x02;
    k += put_len(out + k, mag.n + pad);
    if (pad) {
        out[k++] = 0;
    }
    memcpy(out + k, mag.p, mag.n);
    return k + mag.n;
}

/* Canonical SPKI of an RSA key into `out` (SO_MAX_KEY_DER bytes); its length, or 0. */
static size_t rsa_canonical(der_t n, der_t e, uint8_t *out)
{
    size_t inner = int_size(n) + int_size(e);
    size_t seq = 1 + len_size(inner) + inner;
    size_t bits = 1 + len_size(seq + 1) + seq + 1;
    size_t body = sizeof RSA_ALG + bits;
    size_t total = 1 + len_size(body) + body;
    if (total > SO_MAX_KEY_DER) {
        return 0;
    }
    size_t k = 0;
    out[k++] = 0x30;
    k += put_len(out + k, body);
    memcpy(out + k, RSA_ALG, sizeof RSA_ALG);
    k += sizeof RSA_ALG;
    out[k++] = 0x03;
    k += put_len(out + k, seq + 1);
    out[k++] = 0x00;
    out[k++] = 0x30;
    k += put_len(out + k, inner);
    k += put_int(out + k, n);
    k += put_int(out + k, e);
    return k;
}

static int mpi_err(int ret)
{
    return ret == MBEDTLS_ERR_MPI_ALLOC_FAILED ? SO_ERR_NO_MEM : SO_ERR_KEY;
}

/* y of the P-256 point with this x and y parity (compressed form), into `y` (32 bytes). */
static int p256_decompress(const uint8_t x_bytes[32], int odd, uint8_t y_bytes[32])
{
    mbedtls_ecp_group grp;
    mbedtls_mpi x, rhs, t, e, y;
    mbedtls_ecp_group_init(&grp);
    mbedtls_mpi_init(&x);
    mbedtls_mpi_init(&rhs);
    mbedtls_mpi_init(&t);
    mbedtls_mpi_init(&e);
    mbedtls_mpi_init(&y);
    int ret = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
#define STEP(call)                                                                                 \
    do {                                                                                           \
        if (ret == 0) {                                                                            \
            ret = (call);                                                                          \
        }                                                                                          \
    } while (0)
    STEP(mbedtls_mpi_read_binary(&x, x_bytes, 32));
    if (ret == 0 && mbedtls_mpi_cmp_mpi(&x, &grp.P) >= 0) {
        ret = -1; /* not a field element */
    }
    /* rhs = x^3 - 3x + b mod p */
    STEP(mbedtls_mpi_mul_mpi(&t, &x, &x));
    STEP(mbedtls_mpi_mod_mpi(&t, &t, &grp.P));
    STEP(mbedtls_mpi_mul_mpi(&rhs, &t, &x));
    STEP(mbedtls_mpi_mul_int(&t, &x, 3));
    STEP(mbedtls_mpi_sub_mpi(&rhs, &rhs, &t));
    STEP(mbedtls_mpi_add_mpi(&rhs, &rhs, &grp.B));
    STEP(mbedtls_mpi_mod_mpi(&rhs, &rhs, &grp.P));
    /* p = 3 mod 4: y = rhs^((p+1)/4) is a square root if there is one */
    STEP(mbedtls_mpi_add_int(&e, &grp.P, 1));
    STEP(mbedtls_mpi_shift_r(&e, 2));
    STEP(mbedtls_mpi_exp_mod(&y, &rhs, &e, &grp.P, NULL));
    STEP(mbedtls_mpi_mul_mpi(&t, &y, &y));
    STEP(mbedtls_mpi_mod_mpi(&t, &t, &grp.P));
    if (ret == 0 && mbedtls_mpi_cmp_mpi(&t, &rhs) != 0) {
        ret = -1; /* x is not on the curve */
    }
    if (ret == 0 && mbedtls_mpi_get_bit(&y, 0) != odd) {
        if (mbedtls_mpi_cmp_int(&y, 0) == 0) {
            ret = -1;
        }
        STEP(mbedtls_mpi_sub_mpi(&y, &grp.P, &y));
    }
    STEP(mbedtls_mpi_write_binary(&y, y_bytes, 32));
#undef STEP
    mbedtls_ecp_group_free(&grp);
    mbedtls_mpi_free(&x);
    mbedtls_mpi_free(&rhs);
    mbedtls_mpi_free(&t);
    mbedtls_mpi_free(&e);
    mbedtls_mpi_free(&y);
    return ret == 0 ? SO_OK : mpi_err(ret);
}

/* Canonical SPKI of a P-256 key from its encoded point (91 bytes into `out`); or an error. */
static int ec_canonical(der_t point, uint8_t *out, size_t *out_len)
{
    uint8_t *xy = out + sizeof EC_PREFIX + 1;
    if (point.n == 65 && (point.p[0] == 0x04 || point.p[0] == 0x06 || point.p[0] == 0x07)) {
        if (point.p[0] != 0x04 && (point.p[64] & 1) != (point.p[0] & 1)) {
            return SO_ERR_KEY; /* hybrid form with the wrong parity */
        }
        memcpy(xy, point.p + 1, 64);
    } else if (point.n == 33 && (point.p[0] == 0x02 || point.p[0] == 0x03)) {
        memcpy(xy, point.p + 1, 32);
        int ret = p256_decompress(point.p + 1, point.p[0] & 1, xy + 32);
        if (ret != SO_OK) {
            return ret;
        }
    } else {
        return SO_ERR_KEY;
    }
    memcpy(out, EC_PREFIX, sizeof EC_PREFIX);
    out[sizeof EC_PREFIX] = 0x04;
    *out_len = sizeof EC_PREFIX + 65;
    return SO_OK;
}

mbedtls_ecp_group_id so_pk_curve(const mbedtls_pk_context *pk)
{
    mbedtls_pk_type_t type = mbedtls_pk_get_type(pk);
    if (type != MBEDTLS_PK_ECKEY && type != MBEDTLS_PK_ECDSA) {
        return MBEDTLS_ECP_DP_NONE;
    }
    return so_ec_group(mbedtls_pk_ec(*pk))->id;
}

void so_trusted_key_clear(so_trusted_key_t *key)
{
    mbedtls_pk_free(&key->pk);
    mbedtls_pk_init(&key->pk);
    free(key->der);
    key->der = NULL;
    key->der_len = 0;
    key->usable = false;
    memset(key->kid, 0, sizeof key->kid);
}

int so_spki_parse(const uint8_t *der, size_t len, so_trusted_key_t *key)
{
    if (!der || !key || len == 0 || len > MAX_INPUT_DER) {
        return SO_ERR_KEY;
    }
    der_t in = {der, len}, spki, alg, bits, oid;
    if (!der_next(&in, 0x30, &spki) || in.n != 0 || !der_next(&spki, 0x30, &alg) ||
        !der_next(&spki, 0x03, &bits) || spki.n != 0 || bits.n < 1 || bits.p[0] != 0 ||
        !der_next(&alg, 0x06, &oid)) {
        return SO_ERR_KEY;
    }
    bits.p++;
    bits.n--;
    uint8_t *canon = malloc(SO_MAX_KEY_DER);
    if (!canon) {
        return SO_ERR_NO_MEM;
    }
    size_t canon_len = 0;
    bool is_rsa = der_is(oid, OID_RSA, sizeof OID_RSA);
    bool even_modulus = false;
    int ret = SO_ERR_KEY;
    if (is_rsa) {
        der_t params, rsa_key, n, e;
        bool params_ok = alg.n == 0 || (der_next(&alg, 0x05, &params) && params.n == 0 &&
                                        alg.n == 0);
        if (params_ok && der_next(&bits, 0x30, &rsa_key) && bits.n == 0 &&
            der_uint(&rsa_key, &n) && der_uint(&rsa_key, &e) && rsa_key.n == 0 &&
            (bit_length(n) == 3072 || bit_length(n) == 4096) && e.n > 0 &&
            (e.p[e.n - 1] & 1) && (e.n > 1 || e.p[0] >= 3) && less_than(e, n)) {
            canon_len = rsa_canonical(n, e, canon);
            even_modulus = !(n.p[n.n - 1] & 1);
            ret = canon_len ? SO_OK : SO_ERR_KEY;
        }
    } else if (der_is(oid, OID_EC, sizeof OID_EC)) {
        der_t curve;
        if (der_next(&alg, 0x06, &curve) && alg.n == 0 && der_is(curve, OID_P256, sizeof OID_P256)) {
            ret = ec_canonical(bits, canon, &canon_len);
        }
    }
    if (ret != SO_OK) {
        free(canon);
        return ret;
    }
    so_trusted_key_clear(key);
    if (!even_modulus) {
        /* mbedTLS checks the rest: RSA e and n, EC coordinates below p and on the curve */
        int pret = mbedtls_pk_parse_public_key(&key->pk, canon, canon_len);
        bool fits = pret == 0 && (is_rsa ? mbedtls_pk_get_type(&key->pk) == MBEDTLS_PK_RSA
                                         : so_pk_curve(&key->pk) == MBEDTLS_ECP_DP_SECP256R1);
        if (!fits) {
            so_trusted_key_clear(key);
            free(canon);
            return pret == MBEDTLS_ERR_PK_ALLOC_FAILED ? SO_ERR_NO_MEM : SO_ERR_KEY;
        }
        key->usable = true;
    }
    uint8_t *exact = realloc(canon, canon_len);
    key->der = exact ? exact : canon;
    key->der_len = canon_len;
    so_sha256_hex(key->der, key->der_len, key->kid);
    return SO_OK;
}

int so_spki_key_id(const uint8_t *der, size_t len, char kid[65])
{
    if (!kid) {
        return SO_ERR_INVALID_ARG;
    }
    so_trusted_key_t key;
    memset(&key, 0, sizeof key);
    mbedtls_pk_init(&key.pk);
    int ret = so_spki_parse(der, len, &key);
    if (ret == SO_OK) {
        memcpy(kid, key.kid, sizeof key.kid);
    }
    so_trusted_key_clear(&key);
    return ret;
}
