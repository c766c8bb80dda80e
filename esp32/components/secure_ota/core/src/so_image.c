/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * One pass over NAME-N.bin against verified claims (docs/formats.md §8): length bound as data
 * arrives, SHA-256 of the encrypted and of the decrypted stream, decryption, then at the end
 * the checks in their fixed order. The SHA-256 of the decrypted stream is the app check's
 * running hash (so_appimg.c), which also gives the app image's own digests: two passes of
 * SHA-256 in all, not four.
 */
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

struct so_image_check {
    const so_keyring_t *ring;
    so_claims_t claims;
    bool external;
    uint64_t received;
    mbedtls_sha256_context enc_hash;
    so_encimg_t *dec;            /* internal decryption */
    int deferred;                /* header/decrypt failure seen while streaming */
    uint8_t header[SO_ENC_HEADER_SIZE]; /* external mode: the header as received */
    size_t header_len;
    so_app_check_t *app;
    bool oversize;
    bool finished;
};

int so_image_check_new(const so_keyring_t *ring, const so_claims_t *claims, bool external_decrypt,
                       so_image_check_t **out)
{
    if (!ring || !claims || !out) {
        return SO_ERR_INVALID_ARG;
    }
    so_image_check_t *c = calloc(1, sizeof *c);
    if (!c) {
        return SO_ERR_NO_MEM;
    }
    c->ring = ring;
    c->claims = *claims;
    c->external = external_decrypt;
    so_sha256_start(&c->enc_hash);
    int ret = so_app_check_new(ring, claims, &c->app);
    if (ret == SO_OK && !external_decrypt) {
        ret = so_encimg_new(ring, &c->dec);
    }
    if (ret != SO_OK) {
        so_image_check_free(c);
        return ret;
    }
    *out = c;
    return SO_OK;
}

void so_image_check_free(so_image_check_t *c)
{
    if (!c) {
        return;
    }
    mbedtls_sha256_free(&c->enc_hash);
    so_encimg_free(c->dec);
    so_app_check_free(c->app);
    free(c);
}

static void plaintext(so_image_check_t *c, const uint8_t *p, size_t n)
{
    so_app_check_update(c->app, p, n); /* hashes it too */
}

int so_image_check_update(so_image_check_t *c, const uint8_t *in, size_t len, uint8_t *out,
                          size_t out_cap, size_t *out_len)
{
    if (!c || (!in && len) || !out_len) {
        return SO_ERR_INVALID_ARG;
    }
    if (c->finished) {
        return SO_ERR_STATE;
    }
    *out_len = 0;
    if (c->oversize || len > c->claims.enc_size - c->received) {
        c->oversize = true; /* the endless-data attack: refuse as it arrives */
        return SO_REASON_IMAGE_SIZE_MISMATCH;
    }
    c->received += len;
    so_sha256_update(&c->enc_hash, in, len);
    if (c->external) {
        size_t take = SO_ENC_HEADER_SIZE - c->header_len;
        take = take < len ? take : len;
        memcpy(c->header + c->header_len, in, take);
        c->header_len += take;
        return SO_OK;
    }
    if (c->deferred) {
        return SO_OK;
    }
    if (!out || out_cap < len) {
        return SO_ERR_INVALID_ARG;
    }
    int ret = so_encimg_update(c->dec, in, len, out, out_cap, out_len);
    if (ret < 0) {
        return ret;
    }
    if (ret != SO_OK) {
        /* a size overrun inside the decryptor means the header lied about bin_size */
        c->deferred = ret == SO_REASON_IMAGE_SIZE_MISMATCH ? SO_REASON_IMAGE_HEADER_INVALID : ret;
        *out_len = 0;
        return SO_OK;
    }
    const so_enc_header_t *h = so_encimg_header(c->dec);
    if (h && h->bin_size != c->claims.image_size) {
        c->deferred = SO_REASON_IMAGE_HEADER_INVALID;
        *out_len = 0;
        return SO_OK;
    }
    plaintext(c, out, *out_len);
    return SO_OK;
}

int so_image_check_plain(so_image_check_t *c, const uint8_t *plain, size_t len)
{
    if (!c || (!plain && len) || !c->external) {
        return SO_ERR_INVALID_ARG;
    }
    plaintext(c, plain, len);
    return SO_OK;
}

int so_image_check_resume(so_image_check_t *c, const uint8_t header[SO_ENC_HEADER_SIZE])
{
    if (!c || !header || c->external) {
        return SO_ERR_INVALID_ARG;
    }
    if (c->received != 0) {
        return SO_ERR_STATE;
    }
    c->received = SO_ENC_HEADER_SIZE;
    so_sha256_update(&c->enc_hash, header, SO_ENC_HEADER_SIZE);
    int ret = so_encimg_resume(c->dec, header);
    if (ret < 0) {
        return ret;
    }
    if (ret == SO_OK) {
        const so_enc_header_t *h = so_encimg_header(c->dec);
        if (h->bin_size != c->claims.image_size) {
            ret = SO_REASON_IMAGE_HEADER_INVALID;
        }
    }
    c->deferred = ret;
    return SO_OK;
}

int so_image_check_replay(so_image_check_t *c, const uint8_t *plain, size_t len)
{
    if (!c || (!plain && len) || c->external) {
        return SO_ERR_INVALID_ARG;
    }
    if (c->deferred) {
        return c->deferred;
    }
    if (c->received == 0) {
        return SO_ERR_STATE;
    }
    if (len > c->claims.enc_size - c->received) {
        return SO_REASON_IMAGE_SIZE_MISMATCH;
    }
    uint8_t cipher[256];
    while (len) {
        size_t n = len < sizeof cipher ? len : sizeof cipher;
        int ret = so_encimg_replay(c->dec, plain, n, cipher);
        if (ret != SO_OK) {
            return ret;
        }
        so_sha256_update(&c->enc_hash, cipher, n);
        c->received += n;
        plaintext(c, plain, n);
        plain += n;
        len -= n;
    }
    return SO_OK;
}

uint64_t so_image_check_received(const so_image_check_t *c)
{
    return c ? c->received : 0;
}

int so_image_check_finish(so_image_check_t *c, bool external_ok)
{
    if (!c) {
        return SO_ERR_INVALID_ARG;
    }
    if (c->finished) {
        return SO_ERR_STATE;
    }
    c->finished = true;
    /* 1. length */
    if (c->oversize || c->received != c->claims.enc_size) {
        return SO_REASON_IMAGE_SIZE_MISMATCH;
    }
    /* 2. SHA-256 of the file */
    uint8_t digest[32], want[32];
    so_sha256_finish(&c->enc_hash, digest);
    so_hex64_decode(c->claims.enc_sha256, want);
    if (memcmp(digest, want, 32) != 0) {
        return SO_REASON_ENC_DIGEST_MISMATCH;
    }
    /* 3. header, 4. key and tag */
    if (c->external) {
        so_enc_header_t h;
        int ret = so_enc_header_parse(c->header, &h);
        if (ret != SO_OK || h.bin_size != c->claims.image_size) {
            return SO_REASON_IMAGE_HEADER_INVALID;
        }
        if (!external_ok) {
            return SO_REASON_IMAGE_DECRYPT_FAILED;
        }
    } else {
        if (c->deferred) {
            return c->deferred;
        }
        int ret = so_encimg_finish(c->dec);
        if (ret != SO_OK) {
            return ret < 0 ? ret : (ret == SO_REASON_IMAGE_SIZE_MISMATCH ? SO_REASON_IMAGE_HEADER_INVALID : ret);
        }
    }
    /* 5. SHA-256 of the plaintext */
    so_app_check_sha256(c->app, digest);
    so_hex64_decode(c->claims.image_sha256, want);
    if (memcmp(digest, want, 32) != 0) {
        return SO_REASON_IMAGE_DIGEST_MISMATCH;
    }
    /* 6. app image and claims, 7. secure-boot signature */
    return so_app_check_finish(c->app);
}
