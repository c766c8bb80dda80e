/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Streaming, resumable decryption of Espressif's esp_encrypted_img format (RSA-3072 scheme,
 * docs/formats.md §3): a 512-byte header, then AES-256-GCM ciphertext (16-byte IV, no AAD).
 *
 * GCM is done here from the AES block function (mbedtls_aes_crypt_ecb) and our own GHASH
 * (4-bit tables), so that the state is ours: after an interruption at plaintext offset N the
 * state is rebuilt by re-encrypting the N plaintext bytes already written (CTR mode gives back
 * the exact ciphertext) and absorbing that ciphertext into GHASH. Nothing secret needs to be
 * persisted, and the file format is unchanged; the download continues with an HTTP Range
 * request from file offset 512 + N.
 */
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

#define MAGIC 0x0788B6CFu

typedef struct {
    uint64_t hi, lo;
} u128_t;

struct so_gcm {
    mbedtls_aes_context aes;
    u128_t table[16];      /* table[n] = n * H, n a 4-bit polynomial */
    uint8_t j0[16];
    uint8_t counter[16];
    uint8_t keystream[16];
    size_t ks_used;        /* bytes of `keystream` consumed (16 = need a new block) */
    uint8_t block[16];     /* ciphertext of the block being absorbed */
    size_t block_len;
    u128_t y;              /* GHASH accumulator */
    uint64_t length;       /* ciphertext bytes */
};

static const uint16_t REDUCE4[16] = {
    0x0000, 0x1C20, 0x3840, 0x2460, 0x7080, 0x6CA0, 0x48C0, 0x54E0,
    0xE100, 0xFD20, 0xD940, 0xC560, 0x9180, 0x8DA0, 0xA9C0, 0xB5E0,
};

static u128_t load128(const uint8_t b[16])
{
    u128_t v = {0, 0};
    for (int i = 0; i < 8; i++) {
        v.hi = (v.hi << 8) | b[i];
        v.lo = (v.lo << 8) | b[8 + i];
    }
    return v;
}

static void store128(u128_t v, uint8_t b[16])
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)v.hi;
        b[8 + i] = (uint8_t)v.lo;
        v.hi >>= 8;
        v.lo >>= 8;
    }
}

/* multiply by x in GCM's bit-reflected representation */
static u128_t times_x(u128_t v)
{
    uint64_t carry = v.lo & 1u;
    v.lo = (v.lo >> 1) | (v.hi << 63);
    v.hi = (v.hi >> 1) ^ (carry ? 0xE100000000000000ull : 0);
    return v;
}

static void gcm_table(so_gcm_t *g, const uint8_t h[16])
{
    u128_t *t = g->table;
    memset(t, 0, sizeof g->table);
    t[8] = load128(h);
    t[4] = times_x(t[8]);
    t[2] = times_x(t[4]);
    t[1] = times_x(t[2]);
    for (int i = 2; i < 16; i <<= 1) {
        for (int j = 1; j < i; j++) {
            t[i + j].hi = t[i].hi ^ t[j].hi;
            t[i + j].lo = t[i].lo ^ t[j].lo;
        }
    }
}

/* y = (y ^ block) * H, Horner over nibbles from the highest degree (last nibble) down */
static void ghash_block(so_gcm_t *g, const uint8_t block[16])
{
    uint8_t x[16];
    store128(g->y, x);
    for (int i = 0; i < 16; i++) {
        x[i] ^= block[i];
    }
    u128_t z = {0, 0};
    for (int i = 15; i >= 0; i--) {
        for (int half = 0; half < 2; half++) {
            uint8_t nib = half == 0 ? (x[i] & 0x0F) : (x[i] >> 4);
            if (!(i == 15 && half == 0)) {
                uint8_t out = (uint8_t)(z.lo & 0x0F);
                z.lo = (z.lo >> 4) | (z.hi << 60);
                z.hi = (z.hi >> 4) ^ ((uint64_t)REDUCE4[out] << 48);
            }
            z.hi ^= g->table[nib].hi;
            z.lo ^= g->table[nib].lo;
        }
    }
    g->y = z;
}

static void inc32(uint8_t c[16])
{
    for (int i = 15; i >= 12; i--) {
        if (++c[i] != 0) {
            break;
        }
    }
}

static int gcm_start(so_gcm_t *g, const uint8_t key[32], const uint8_t *iv, size_t iv_len)
{
    mbedtls_aes_init(&g->aes);
    if (mbedtls_aes_setkey_enc(&g->aes, key, 256) != 0) {
        return SO_ERR_CRYPTO;
    }
    uint8_t h[16] = {0};
    mbedtls_aes_crypt_ecb(&g->aes, MBEDTLS_AES_ENCRYPT, h, h);
    gcm_table(g, h);
    so_wipe(h, sizeof h);
    g->y.hi = g->y.lo = 0;
    if (iv_len == 12) {
        memcpy(g->j0, iv, 12);
        g->j0[12] = g->j0[13] = g->j0[14] = 0;
        g->j0[15] = 1;
    } else {
        uint8_t blk[16];
        for (size_t off = 0; off < iv_len; off += 16) {
            memset(blk, 0, 16);
            memcpy(blk, iv + off, iv_len - off < 16 ? iv_len - off : 16);
            ghash_block(g, blk);
        }
        memset(blk, 0, 16);
        uint64_t bits = (uint64_t)iv_len * 8u;
        for (int i = 0; i < 8; i++) {
            blk[15 - i] = (uint8_t)(bits >> (8 * i));
        }
        ghash_block(g, blk);
        store128(g->y, g->j0);
        g->y.hi = g->y.lo = 0;
    }
    memcpy(g->counter, g->j0, 16);
    g->ks_used = 16;
    g->block_len = 0;
    g->length = 0;
    return SO_OK;
}

/* Process `len` bytes; `decrypt` chooses which side is the ciphertext fed to GHASH. */
static void gcm_update(so_gcm_t *g, bool decrypt, const uint8_t *in, size_t len, uint8_t *out)
{
    for (size_t i = 0; i < len; i++) {
        if (g->ks_used == 16) {
            inc32(g->counter);
            mbedtls_aes_crypt_ecb(&g->aes, MBEDTLS_AES_ENCRYPT, g->counter, g->keystream);
            g->ks_used = 0;
        }
        uint8_t c_in = in[i];
        uint8_t o = (uint8_t)(c_in ^ g->keystream[g->ks_used++]);
        if (out) {
            out[i] = o;
        }
        g->block[g->block_len++] = decrypt ? c_in : o;
        if (g->block_len == 16) {
            ghash_block(g, g->block);
            g->block_len = 0;
        }
    }
    g->length += len;
}

static bool gcm_check_tag(so_gcm_t *g, const uint8_t tag[16])
{
    if (g->block_len) {
        memset(g->block + g->block_len, 0, 16 - g->block_len);
        ghash_block(g, g->block);
        g->block_len = 0;
    }
    uint8_t lens[16] = {0};
    uint64_t bits = g->length * 8u;
    for (int i = 0; i < 8; i++) {
        lens[15 - i] = (uint8_t)(bits >> (8 * i));
    }
    ghash_block(g, lens);
    uint8_t s[16], ek[16];
    store128(g->y, s);
    mbedtls_aes_crypt_ecb(&g->aes, MBEDTLS_AES_ENCRYPT, g->j0, ek);
    for (int i = 0; i < 16; i++) {
        s[i] ^= ek[i];
    }
    bool ok = so_ct_equal(s, tag, 16);
    so_wipe(ek, sizeof ek);
    return ok;
}

static void gcm_free(so_gcm_t *g)
{
    mbedtls_aes_free(&g->aes);
    so_wipe(g, sizeof *g);
}

/* ---- the esp_encrypted_img stream ------------------------------------------------------- */

typedef enum { ST_HEADER, ST_DATA, ST_FAILED, ST_DONE } enc_state_t;

struct so_encimg {
    const so_keyring_t *ring;
    enc_state_t state;
    int failure;                 /* reason once ST_FAILED */
    uint8_t raw[SO_ENC_HEADER_SIZE];
    size_t raw_len;
    so_enc_header_t header;
    so_gcm_t gcm;
    bool gcm_live;
    uint64_t position;           /* plaintext bytes produced */
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int so_enc_header_parse(const uint8_t raw[SO_ENC_HEADER_SIZE], so_enc_header_t *out)
{
    if (le32(raw) != MAGIC) {
        return SO_REASON_IMAGE_HEADER_INVALID;
    }
    uint32_t size = le32(raw + 404);
    if (size == 0 || size > SO_MAX_IMAGE_SIZE) {
        return SO_REASON_IMAGE_HEADER_INVALID;
    }
    for (size_t i = 424; i < SO_ENC_HEADER_SIZE; i++) {
        if (raw[i]) {
            return SO_REASON_IMAGE_HEADER_INVALID;
        }
    }
    memcpy(out->wrapped_key, raw + 4, 384);
    memcpy(out->iv, raw + 388, 16);
    out->bin_size = size;
    memcpy(out->tag, raw + 408, 16);
    return SO_OK;
}

int so_encimg_new(const so_keyring_t *ring, so_encimg_t **out)
{
    if (!ring || !out) {
        return SO_ERR_INVALID_ARG;
    }
    if (!ring->has_image_key) {
        return SO_ERR_KEY;
    }
    so_encimg_t *dec = calloc(1, sizeof *dec);
    if (!dec) {
        return SO_ERR_NO_MEM;
    }
    dec->ring = ring;
    *out = dec;
    return SO_OK;
}

void so_encimg_free(so_encimg_t *dec)
{
    if (!dec) {
        return;
    }
    if (dec->gcm_live) {
        gcm_free(&dec->gcm);
    }
    so_wipe(dec, sizeof *dec);
    free(dec);
}

static int fail(so_encimg_t *dec, int reason)
{
    if (dec->gcm_live) {
        gcm_free(&dec->gcm);
        dec->gcm_live = false;
    }
    dec->state = ST_FAILED;
    dec->failure = reason;
    return reason;
}

/*
 * ECIES-P256 (esp_encrypted_img >= 2.4, docs/formats.md §3): the 384 bytes are the sender's
 * point X || Y, a 32-byte HKDF salt and 288 zero bytes; AES key = HKDF-SHA256(salt, ECDH x,
 * "_esp_enc_img_ecc").
 */
static int ecies_key(so_encimg_t *dec, uint8_t key[32])
{
    static const uint8_t info[16] = "_esp_enc_img_ecc"; /* 16 bytes, no NUL */
    const uint8_t *field = dec->header.wrapped_key;
    for (size_t i = 96; i < sizeof dec->header.wrapped_key; i++) {
        if (field[i]) {
            return SO_REASON_IMAGE_HEADER_INVALID;
        }
    }
    uint8_t z[32];
    int ret = SO_REASON_IMAGE_DECRYPT_FAILED;
    if (so_p256_shared_x(mbedtls_pk_ec(dec->ring->image_key), field, dec->ring->rng,
                         dec->ring->rng_ctx, z) == 0 &&
        so_hkdf_sha256_32(field + 64, 32, z, sizeof z, info, sizeof info, key) == 0) {
        ret = SO_OK;
    }
    so_wipe(z, sizeof z);
    return ret;
}

/* Header complete: parse it and unwrap (RSA-3072) or derive (ECIES-P256) the AES key. */
static int start(so_encimg_t *dec)
{
    int ret = so_enc_header_parse(dec->raw, &dec->header);
    if (ret != SO_OK) {
        return fail(dec, ret);
    }
    uint8_t key[64];
    size_t key_len = 0;
    if (so_pk_curve(&dec->ring->image_key) == MBEDTLS_ECP_DP_SECP256R1) {
        ret = ecies_key(dec, key);
        if (ret != SO_OK) {
            so_wipe(key, sizeof key);
            return fail(dec, ret);
        }
    } else if (mbedtls_rsa_get_len(mbedtls_pk_rsa(dec->ring->image_key)) != 384 ||
               so_rsa_pkcs1v15_decrypt(mbedtls_pk_rsa(dec->ring->image_key), dec->ring->rng,
                                       dec->ring->rng_ctx, dec->header.wrapped_key, key,
                                       sizeof key, &key_len) != 0 ||
               key_len != 32) {
        so_wipe(key, sizeof key);
        return fail(dec, SO_REASON_IMAGE_DECRYPT_FAILED);
    }
    ret = gcm_start(&dec->gcm, key, dec->header.iv, 16);
    so_wipe(key, sizeof key);
    dec->gcm_live = true;
    if (ret != SO_OK) {
        fail(dec, SO_REASON_IMAGE_DECRYPT_FAILED);
        return ret;
    }
    dec->state = ST_DATA;
    return SO_OK;
}

int so_encimg_update(so_encimg_t *dec, const uint8_t *in, size_t len, uint8_t *out, size_t out_cap,
                     size_t *out_len)
{
    if (!dec || (!in && len) || !out_len || (len && !out) || out_cap < len) {
        return SO_ERR_INVALID_ARG;
    }
    *out_len = 0;
    if (dec->state == ST_FAILED) {
        return dec->failure;
    }
    if (dec->state == ST_DONE) {
        return SO_ERR_STATE;
    }
    if (dec->state == ST_HEADER) {
        size_t take = SO_ENC_HEADER_SIZE - dec->raw_len;
        if (take > len) {
            take = len;
        }
        memcpy(dec->raw + dec->raw_len, in, take);
        dec->raw_len += take;
        in += take;
        len -= take;
        if (dec->raw_len < SO_ENC_HEADER_SIZE) {
            return SO_OK;
        }
        int ret = start(dec);
        if (ret != SO_OK) {
            return ret;
        }
    }
    if (len > dec->header.bin_size - dec->position) {
        return fail(dec, SO_REASON_IMAGE_SIZE_MISMATCH);
    }
    gcm_update(&dec->gcm, true, in, len, out);
    dec->position += len;
    *out_len = len;
    return SO_OK;
}

int so_encimg_resume(so_encimg_t *dec, const uint8_t header[SO_ENC_HEADER_SIZE])
{
    if (!dec || !header) {
        return SO_ERR_INVALID_ARG;
    }
    if (dec->state != ST_HEADER || dec->raw_len != 0) {
        return SO_ERR_STATE;
    }
    memcpy(dec->raw, header, SO_ENC_HEADER_SIZE);
    dec->raw_len = SO_ENC_HEADER_SIZE;
    return start(dec);
}

int so_encimg_replay(so_encimg_t *dec, const uint8_t *plain, size_t len, uint8_t *cipher_out)
{
    if (!dec || (!plain && len)) {
        return SO_ERR_INVALID_ARG;
    }
    if (dec->state == ST_FAILED) {
        return dec->failure;
    }
    if (dec->state != ST_DATA) {
        return SO_ERR_STATE;
    }
    if (len > dec->header.bin_size - dec->position) {
        return fail(dec, SO_REASON_IMAGE_SIZE_MISMATCH);
    }
    gcm_update(&dec->gcm, false, plain, len, cipher_out);
    dec->position += len;
    return SO_OK;
}

int so_encimg_finish(so_encimg_t *dec)
{
    if (!dec) {
        return SO_ERR_INVALID_ARG;
    }
    if (dec->state == ST_FAILED) {
        return dec->failure;
    }
    if (dec->state != ST_DATA || dec->position != dec->header.bin_size) {
        return fail(dec, SO_REASON_IMAGE_SIZE_MISMATCH);
    }
    bool ok = gcm_check_tag(&dec->gcm, dec->header.tag);
    gcm_free(&dec->gcm);
    dec->gcm_live = false;
    if (!ok) {
        return fail(dec, SO_REASON_IMAGE_DECRYPT_FAILED);
    }
    dec->state = ST_DONE;
    return SO_OK;
}

uint64_t so_encimg_position(const so_encimg_t *dec)
{
    return dec ? dec->position : 0;
}

const so_enc_header_t *so_encimg_header(const so_encimg_t *dec)
{
    return (dec && dec->raw_len == SO_ENC_HEADER_SIZE && dec->state != ST_HEADER) ? &dec->header
                                                                                   : NULL;
}

#ifdef SO_HOST_TESTS
/* Test hook: decrypt with our GCM, replaying the first `split` bytes as plaintext (resume). */
int so_test_gcm_decrypt(const uint8_t key[32], const uint8_t iv[16], const uint8_t *ct, size_t len,
                        const uint8_t tag[16], uint8_t *pt, size_t split);
int so_test_gcm_decrypt(const uint8_t key[32], const uint8_t iv[16], const uint8_t *ct, size_t len,
                        const uint8_t tag[16], uint8_t *pt, size_t split)
{
    so_gcm_t a, b;
    gcm_start(&a, key, iv, 16);
    gcm_update(&a, true, ct, split, pt);
    /* a second context rebuilt from the plaintext of the first `split` bytes */
    gcm_start(&b, key, iv, 16);
    uint8_t *again = malloc(split + 1);
    gcm_update(&b, false, pt, split, again);
    bool same = memcmp(again, ct, split) == 0;
    free(again);
    gcm_update(&b, true, ct + split, len - split, pt + split);
    bool ok = gcm_check_tag(&b, tag) && same;
    gcm_free(&a);
    gcm_free(&b);
    return ok ? 0 : -1;
}
#endif
