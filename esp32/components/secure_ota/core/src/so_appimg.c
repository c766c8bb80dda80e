/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Streaming checks of the decrypted, signed app image (docs/formats.md §1, §2 and §8 steps 6
 * and 7): structure (header, segments, checksum, appended SHA-256, esp_app_desc_t), equality
 * with the claims, and the secure-boot signature (V1 or V2) by the device's key. Bounded
 * memory: a 4096-byte tail buffer for the signature, never the whole image.
 *
 * One pass of SHA-256 over the stream: a running hash of every byte fed gives the digest of
 * the whole plaintext (so_app_check_sha256), and a copy of it taken at each of the two
 * boundaries gives the digests of the two prefixes: `image_hash` (through the padding, where
 * the appended digest starts) and the secure-boot digest of the signed data (image_size - 68
 * for V1, image_size - 4096 for V2). Only V2 with ECDSA P-384 needs a second pass, SHA-384 of
 * the signed data.
 */
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

#define IMAGE_MAGIC 0xE9u
#define DESC_MAGIC 0xABCD5432u
#define DESC_SIZE 256u
#define V1_BLOCK 68u
#define SECTOR 4096u
#define SIG_BLOCK 1216u
#define CRC_SPAN 1196u
#define MAX_SEGMENTS 16u

typedef enum {
    P_HEADER,       /* 24 bytes */
    P_SEG_HEADER,   /* 8 bytes */
    P_DESC,         /* 256 bytes of segment 0 */
    P_SEG_DATA,
    P_FOOTER,       /* padding and the checksum byte */
    P_DIGEST,       /* 32 bytes */
    P_TRAILER,
    P_BAD,
} phase_t;

struct so_app_check {
    const so_keyring_t *ring;
    so_claims_t claims;
    /* parser */
    phase_t phase;
    uint8_t buf[DESC_SIZE];
    size_t need, have;
    uint64_t position;       /* bytes consumed */
    uint8_t header[24];
    uint8_t desc[DESC_SIZE];
    unsigned segments, segment_index;
    uint64_t seg_left;
    uint8_t checksum;
    uint64_t image_length;   /* through the digest */
    uint8_t image_digest[32]; /* SHA-256 of the bytes before the appended digest */
    /* one running SHA-256 of every byte fed */
    mbedtls_sha256_context hash;
    uint64_t received;       /* bytes fed (and hashed) */
    /* signature */
    size_t tail_size;
    uint64_t data_length;    /* claims.image_size - tail_size (signed data) */
    bool sha384;
    mbedtls_sha512_context data_hash384;
    bool data_done;          /* data_digest holds the digest of the signed data */
    uint8_t data_digest[64];
    bool finished;
    uint8_t tail[SECTOR];
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* `acc` XOR every byte of p[0..n), eight bytes at a time (the order of the bytes in a word does
 * not matter to XOR, so this is the same on any endianness). */
static uint8_t xor_bytes(uint8_t acc, const uint8_t *p, size_t n)
{
    uint64_t w = 0;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        w ^= v;
    }
    w ^= w >> 32;
    w ^= w >> 16;
    w ^= w >> 8;
    acc ^= (uint8_t)w;
    while (n--) {
        acc ^= *p++;
    }
    return acc;
}

/* The digest of a copy of the running hash: the hash of the bytes fed so far. */
static void snapshot(const mbedtls_sha256_context *hash, uint8_t out[32])
{
    mbedtls_sha256_context copy;
    mbedtls_sha256_init(&copy);
    mbedtls_sha256_clone(&copy, hash);
    so_sha256_finish(&copy, out);
    mbedtls_sha256_free(&copy);
}

/* The signed data (the first data_length bytes) is complete: keep its digest. */
static void take_data_digest(so_app_check_t *app)
{
    if (app->sha384) {
        so_sha384_finish(&app->data_hash384, app->data_digest);
    } else {
        snapshot(&app->hash, app->data_digest);
    }
    app->data_done = true;
}

/* The next `len` bytes of the stream, in order: into the running hash (and, before the end of
 * the signed data, the SHA-384 of V2 ECDSA P-384), splitting at the end of the signed data. */
static void feed(so_app_check_t *app, const uint8_t *p, size_t len)
{
    while (len) {
        size_t n = len;
        if (!app->data_done) {
            uint64_t left = app->data_length - app->received; /* > 0 until data_done */
            n = left < len ? (size_t)left : len;
            if (app->sha384) {
                so_sha384_update(&app->data_hash384, p, n);
            }
        }
        so_sha256_update(&app->hash, p, n);
        app->received += n;
        p += n;
        len -= n;
        if (!app->data_done && app->received == app->data_length) {
            take_data_digest(app);
        }
    }
}

int so_app_check_new(const so_keyring_t *ring, const so_claims_t *claims, so_app_check_t **out)
{
    if (!ring || !claims || !out) {
        return SO_ERR_INVALID_ARG;
    }
    so_app_check_t *app = calloc(1, sizeof *app);
    if (!app) {
        return SO_ERR_NO_MEM;
    }
    app->ring = ring;
    app->claims = *claims;
    app->phase = P_HEADER;
    app->need = 24;
    app->checksum = 0xEF;
    so_sha256_start(&app->hash);
    app->tail_size = claims->secure_boot == SO_SB_V1 ? V1_BLOCK : SECTOR;
    app->data_length = claims->image_size > app->tail_size ? claims->image_size - app->tail_size : 0;
    app->sha384 = claims->secure_boot == SO_SB_V2_ECDSA384;
    so_sha384_start(&app->data_hash384);
    if (app->data_length == 0) {
        take_data_digest(app); /* the digest of nothing */
    }
    *out = app;
    return SO_OK;
}

void so_app_check_free(so_app_check_t *app)
{
    if (!app) {
        return;
    }
    mbedtls_sha256_free(&app->hash);
    mbedtls_sha512_free(&app->data_hash384);
    free(app);
}

static void want(so_app_check_t *app, phase_t phase, size_t need)
{
    app->phase = phase;
    app->need = need;
    app->have = 0;
}

static void after_segment(so_app_check_t *app)
{
    if (++app->segment_index < app->segments) {
        want(app, P_SEG_HEADER, 8);
    } else {
        want(app, P_FOOTER, (size_t)(16 - (app->position % 16)));
    }
}

/* A structured piece (header, segment header, descriptor, digest) is complete in app->buf. */
static void piece(so_app_check_t *app)
{
    uint8_t *b = app->buf;
    switch (app->phase) {
    case P_HEADER:
        memcpy(app->header, b, 24);
        app->segments = b[1];
        if (b[0] != IMAGE_MAGIC || app->segments < 1 || app->segments > MAX_SEGMENTS || b[23] > 1) {
            app->phase = P_BAD;
            return;
        }
        want(app, P_SEG_HEADER, 8);
        return;
    case P_SEG_HEADER: {
        uint32_t length = le32(b + 4);
        if (length % 4 || app->position + length > SO_MAX_IMAGE_SIZE ||
            (app->segment_index == 0 && length < DESC_SIZE)) {
            app->phase = P_BAD;
            return;
        }
        app->seg_left = length;
        if (app->segment_index == 0) {
            app->seg_left -= DESC_SIZE;
            want(app, P_DESC, DESC_SIZE);
        } else if (app->seg_left) {
            want(app, P_SEG_DATA, 0);
        } else {
            after_segment(app);
        }
        return;
    }
    case P_DESC:
        memcpy(app->desc, b, DESC_SIZE);
        app->checksum = xor_bytes(app->checksum, b, DESC_SIZE);
        if (app->seg_left) {
            want(app, P_SEG_DATA, 0);
        } else {
            after_segment(app);
        }
        return;
    case P_DIGEST: {
        if (memcmp(app->image_digest, b, 32) != 0) {
            app->phase = P_BAD;
            return;
        }
        app->image_length = app->position + 32;
        want(app, P_TRAILER, 0);
        return;
    }
    default:
        return;
    }
}

/* Parse the next `len` bytes of the stream. Every byte goes into the running hash as it is
 * consumed, so that at the end of the padding the hash is exactly that of the bytes before the
 * appended digest; after a structural error the rest is only hashed. */
static void parse(so_app_check_t *app, const uint8_t *data, size_t len)
{
    while (len && app->phase != P_BAD) {
        size_t take;
        switch (app->phase) {
        case P_SEG_DATA:
            take = app->seg_left < len ? (size_t)app->seg_left : len;
            feed(app, data, take);
            app->checksum = xor_bytes(app->checksum, data, take);
            app->position += take;
            app->seg_left -= take;
            if (!app->seg_left) {
                after_segment(app);
            }
            break;
        case P_FOOTER:
            take = app->need < len ? app->need : len;
            feed(app, data, take);
            app->position += take;
            app->need -= take;
            if (!app->need) {
                if (data[take - 1] != app->checksum) {
                    app->phase = P_BAD;
                    break;
                }
                app->image_length = app->position;
                if (app->header[23]) {
                    snapshot(&app->hash, app->image_digest); /* received == position here */
                    want(app, P_DIGEST, 32);
                } else {
                    want(app, P_TRAILER, 0);
                }
            }
            break;
        case P_TRAILER:
            take = len;
            feed(app, data, take);
            app->position += take;
            break;
        default: /* structured pieces */
            take = app->need - app->have < len ? app->need - app->have : len;
            feed(app, data, take);
            memcpy(app->buf + app->have, data, take);
            app->have += take;
            if (app->have == app->need) {
                app->position += app->need;
                if (app->phase == P_DIGEST) {
                    app->position -= 32; /* piece() wants the position before the digest */
                    piece(app);
                    if (app->phase != P_BAD) {
                        app->position += 32;
                    }
                } else {
                    piece(app);
                }
            }
            break;
        }
        data += take;
        len -= take;
    }
    feed(app, data, len);
}

void so_app_check_update(so_app_check_t *app, const uint8_t *data, size_t len)
{
    if (!app || !data || !len || app->finished) {
        return;
    }
    /* signature side: keep the tail, at most tail_size bytes from stream offset data_length on
     * (the signed data before it is hashed by feed) */
    uint64_t end = app->received + len;
    if (end > app->data_length) {
        uint64_t first = app->received > app->data_length ? app->received : app->data_length;
        uint64_t at = first - app->data_length;
        if (at < app->tail_size) {
            uint64_t n = end - first < app->tail_size - at ? end - first : app->tail_size - at;
            memcpy(app->tail + at, data + (first - app->received), (size_t)n);
        }
    }
    parse(app, data, len); /* advances app->received by len */
}

void so_app_check_sha256(const so_app_check_t *app, uint8_t out[32])
{
    snapshot(&app->hash, out);
}

/* Does the descriptor's C string (NUL-terminated within `size`) read as valid text? */
static bool desc_text(const uint8_t *field, size_t size, char *out)
{
    size_t n = 0;
    while (n < size && field[n]) {
        n++;
    }
    if (!so_utf8_valid(field, n)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (field[i] < 0x20 || field[i] == 0x7F) {
            return false;
        }
    }
    if (out) {
        memcpy(out, field, n);
        out[n] = '\0';
    }
    return true;
}

/* §8 step 6: a valid app image equal to the claims */
static bool image_matches(so_app_check_t *app)
{
    if (app->phase != P_TRAILER || app->received != app->claims.image_size ||
        app->image_length < SO_MIN_IMAGE_SIZE) {
        return false;
    }
    const uint8_t *d = app->desc;
    char version[33], project[33];
    if (le32(d) != DESC_MAGIC || !desc_text(d + 16, 32, version) ||
        !desc_text(d + 48, 32, project) || !desc_text(d + 80, 16, NULL) ||
        !desc_text(d + 96, 16, NULL) || !desc_text(d + 112, 32, NULL)) {
        return false;
    }
    char elf[65];
    so_hex_encode(d + 144, 32, elf);
    uint16_t chip = (uint16_t)(app->header[12] | (app->header[13] << 8));
    return chip == app->claims.chip_id && le32(d + 4) == app->claims.secure_version &&
           strcmp(version, app->claims.version) == 0 &&
           strcmp(project, app->claims.project) == 0 &&
           strcmp(elf, app->claims.app_elf_sha256) == 0;
}

static void reverse_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dst[i] = src[n - 1 - i];
    }
}

static bool verify_v1(so_app_check_t *app, const uint8_t digest[32])
{
    mbedtls_pk_context *key = (mbedtls_pk_context *)&app->ring->secure_boot_key;
    if (app->claims.image_size <= V1_BLOCK || so_pk_curve(key) != MBEDTLS_ECP_DP_SECP256R1 ||
        le32(app->tail) != 0) {
        return false;
    }
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*key);
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    bool ok = mbedtls_mpi_read_binary(&r, app->tail + 4, 32) == 0 &&
              mbedtls_mpi_read_binary(&s, app->tail + 36, 32) == 0 &&
              mbedtls_ecdsa_verify(so_ec_group(ec), digest, 32, so_ec_point(ec), &r, &s) == 0;
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return ok;
}

static bool rsa_block_ok(mbedtls_pk_context *key, const uint8_t *blk, const uint8_t digest[32])
{
    if (mbedtls_pk_get_type(key) != MBEDTLS_PK_RSA) {
        return false;
    }
    mbedtls_rsa_context *rsa = mbedtls_pk_rsa(*key);
    if (mbedtls_rsa_get_len(rsa) != 384) {
        return false;
    }
    mbedtls_mpi n, e, kn, ke;
    mbedtls_mpi_init(&n);
    mbedtls_mpi_init(&e);
    mbedtls_mpi_init(&kn);
    mbedtls_mpi_init(&ke);
    bool same = mbedtls_mpi_read_binary_le(&n, blk + 36, 384) == 0 &&
                mbedtls_mpi_read_binary_le(&e, blk + 420, 4) == 0 &&
                mbedtls_rsa_export(rsa, &kn, NULL, NULL, NULL, &ke) == 0 &&
                mbedtls_mpi_cmp_mpi(&n, &kn) == 0 && mbedtls_mpi_cmp_mpi(&e, &ke) == 0;
    mbedtls_mpi_free(&n);
    mbedtls_mpi_free(&e);
    mbedtls_mpi_free(&kn);
    mbedtls_mpi_free(&ke);
    if (!same) {
        return false;
    }
    uint8_t sig[384];
    reverse_copy(sig, blk + 812, 384);
    return so_rsa_pss_sha256_verify(rsa, digest, sig) == 0;
}

static bool ec_block_ok(mbedtls_pk_context *key, const uint8_t *blk, bool p384,
                        const uint8_t *digest)
{
    size_t size = p384 ? 48 : 32;
    const uint8_t *point = blk + (p384 ? 53 : 37);
    const uint8_t *rs = point + 2 * size;
    mbedtls_ecp_group_id want = p384 ? MBEDTLS_ECP_DP_SECP384R1 : MBEDTLS_ECP_DP_SECP256R1;
    if (so_pk_curve(key) != want) {
        return false;
    }
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*key);
    uint8_t raw[1 + 2 * 48];
    raw[0] = 0x04;
    reverse_copy(raw + 1, point, size);
    reverse_copy(raw + 1 + size, point + size, size);
    mbedtls_ecp_point q;
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    bool ok = mbedtls_ecp_point_read_binary(so_ec_group(ec), &q, raw, 1 + 2 * size) == 0 &&
              mbedtls_ecp_point_cmp(&q, so_ec_point(ec)) == 0 &&
              mbedtls_mpi_read_binary_le(&r, rs, size) == 0 &&
              mbedtls_mpi_read_binary_le(&s, rs + size, size) == 0 &&
              mbedtls_ecdsa_verify(so_ec_group(ec), digest, size, so_ec_point(ec), &r, &s) == 0;
    mbedtls_ecp_point_free(&q);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return ok;
}

static bool verify_v2(so_app_check_t *app, const uint8_t *digest, size_t digest_len)
{
    mbedtls_pk_context *key = (mbedtls_pk_context *)&app->ring->secure_boot_key;
    so_secure_boot_t scheme = app->claims.secure_boot;
    if (app->claims.image_size < 2 * SECTOR || app->claims.image_size % SECTOR) {
        return false;
    }
    for (size_t i = 0; i < 3; i++) {
        const uint8_t *blk = app->tail + i * SIG_BLOCK;
        if (blk[0] != 0xE7 || (blk[1] != 2 && blk[1] != 3) ||
            le32(blk + CRC_SPAN) != so_crc32(blk, CRC_SPAN)) {
            continue;
        }
        if (blk[1] == 2) {
            if (scheme == SO_SB_V2_RSA3072 && memcmp(blk + 4, digest, 32) == 0 &&
                rsa_block_ok(key, blk, digest)) {
                return true;
            }
            continue;
        }
        uint8_t sha_type = blk[2];
        if (sha_type > 1) {
            continue;
        }
        uint8_t curve = sha_type == 1 ? blk[52] : blk[36];
        bool p384 = curve == 3;
        if (curve < 1 || curve > 3 || p384 != (sha_type == 1) || curve == 1) {
            continue; /* P-192 blocks are never ours */
        }
        so_secure_boot_t block_scheme = p384 ? SO_SB_V2_ECDSA384 : SO_SB_V2_ECDSA256;
        if (block_scheme != scheme || memcmp(blk + 4, digest, digest_len) != 0) {
            continue;
        }
        if (ec_block_ok(key, blk, p384, digest)) {
            return true;
        }
    }
    return false;
}

int so_app_check_finish(so_app_check_t *app)
{
    if (!app) {
        return SO_ERR_INVALID_ARG;
    }
    if (app->finished) {
        return SO_ERR_STATE;
    }
    app->finished = true;
    if (!image_matches(app)) {
        return SO_REASON_IMAGE_INVALID;
    }
    if (!app->ring->has_secure_boot_key) {
        return SO_ERR_KEY;
    }
    if (!app->data_done) {
        take_data_digest(app); /* not reached: image_matches wants all image_size bytes */
    }
    size_t digest_len = app->sha384 ? 48 : 32;
    const uint8_t *digest = app->data_digest;
    bool ok = app->claims.secure_boot == SO_SB_V1 ? verify_v1(app, digest)
                                                  : verify_v2(app, digest, digest_len);
    /* the signature must cover the whole image */
    if (!ok || app->data_length < app->image_length) {
        return SO_REASON_SECURE_BOOT_SIGNATURE_INVALID;
    }
    return SO_OK;
}
