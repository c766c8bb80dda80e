/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The esp_encrypted_img decryptor and the image checks as streams: Espressif's published
 * RSA-3072 vector (any chunking, truncation, resume at many offsets) and our own releases
 * (interrupted at many offsets, resumed from the plaintext already written, same plaintext,
 * tag verifies, every §8 check passes). Also prints a few timings.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host_verify.h"
#include "so_internal.h"
#include "test_util.h"

static const char ESPRESSIF_SHA256[] =
    "a230a5aae39e351c0d806acb453662dfe66afcec74f6c0c861d75048fae07f78";

static int test_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) out[i] = (unsigned char)rand();
    return 0;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Decrypt `file` in chunks of `chunk` (0 = random) into `plain`; return the finish result. */
static int decrypt_all(const so_keyring_t *ring, const uint8_t *file, size_t len, size_t chunk,
                       uint8_t *plain, size_t *plain_len)
{
    so_encimg_t *dec = NULL;
    if (so_encimg_new(ring, &dec) != SO_OK) return -100;
    size_t pos = 0, produced = 0;
    int ret = SO_OK;
    while (pos < len && ret == SO_OK) {
        size_t n = chunk ? chunk : 1 + (size_t)(rand() % 3000);
        if (n > len - pos) n = len - pos;
        size_t out = 0;
        ret = so_encimg_update(dec, file + pos, n, plain + produced, n, &out);
        produced += out;
        pos += n;
    }
    if (ret == SO_OK) ret = so_encimg_finish(dec);
    so_encimg_free(dec);
    *plain_len = produced;
    return ret;
}

static void test_espressif(const char *dir)
{
    char *key_path = join(dir, "rsa3072_test_private_key.pem");
    char *img_path = join(dir, "rsa3072_test_image.bin");
    size_t key_len = 0, len = 0;
    uint8_t *pem = host_read_file(key_path, 65536, &key_len);
    uint8_t *file = host_read_file(img_path, 1 << 20, &len);
    free(key_path);
    free(img_path);
    if (!pem || !file) {
        printf("SKIP Espressif vector: %s not found (../shared absent)\n", dir);
        free(pem);
        free(file);
        return;
    }
    so_keyring_t *ring = NULL;
    so_keyring_new(test_rng, NULL, &ring);
    CHECK(so_keyring_set_image_key(ring, pem, key_len) == SO_OK, "Espressif key loads");
    uint8_t *plain = malloc(len), *again = malloc(len);
    size_t plain_len = 0;
    char hex[65];
    size_t chunks[] = {len, 1, 16, 511, 512, 513, 4096, 0, 0, 0};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        int ret = decrypt_all(ring, file, len, chunks[i], plain, &plain_len);
        so_sha256_hex(plain, plain_len, hex);
        CHECK(ret == SO_OK && plain_len == 11680 && strcmp(hex, ESPRESSIF_SHA256) == 0,
              "Espressif vector, chunk %zu: ret %d len %zu sha %s", chunks[i], ret, plain_len, hex);
    }
    CHECK(decrypt_all(ring, file, len - 1, 0, again, &plain_len) == SO_REASON_IMAGE_SIZE_MISMATCH,
          "truncated by one byte fails at the end");
    uint8_t *copy = malloc(len);
    memcpy(copy, file, len);
    copy[len - 5] ^= 1;
    CHECK(decrypt_all(ring, copy, len, 0, again, &plain_len) == SO_REASON_IMAGE_DECRYPT_FAILED,
          "tampered ciphertext fails the tag");
    /* resume at many plaintext offsets */
    int resumed = 0;
    for (size_t off = 0; off <= 11680; off += (off < 40 ? 1 : 383)) {
        so_encimg_t *dec = NULL;
        so_encimg_new(ring, &dec);
        int ret = so_encimg_resume(dec, file);
        if (ret == SO_OK) ret = so_encimg_replay(dec, plain, off, NULL);
        size_t out = 0;
        if (ret == SO_OK)
            ret = so_encimg_update(dec, file + 512 + off, len - 512 - off, again + off, len, &out);
        if (ret == SO_OK) ret = so_encimg_finish(dec);
        so_encimg_free(dec);
        memcpy(again, plain, off);
        CHECK(ret == SO_OK && off + out == 11680 && memcmp(again, plain, 11680) == 0,
              "resume at %zu: %d", off, ret);
        resumed++;
    }
    printf("Espressif vector: %d resume offsets\n", resumed);
    so_keyring_free(ring);
    free(pem);
    free(file);
    free(plain);
    free(again);
    free(copy);
}

static int image_check_from(const so_keyring_t *ring, const so_claims_t *claims,
                            const uint8_t *file, size_t len, size_t cut, uint8_t *plain)
{
    /* first session: up to `cut` bytes of the file, keeping the plaintext */
    so_image_check_t *a = NULL;
    so_image_check_new(ring, claims, false, &a);
    size_t produced = 0;
    int ret = so_image_check_update(a, file, cut, plain, len, &produced);
    so_image_check_free(a);
    if (ret != SO_OK) return ret;
    if (cut < SO_ENC_HEADER_SIZE) {
        cut = 0; /* interrupted inside the header: start again */
        produced = 0;
    }
    /* after the "reboot": header, replay what was written, Range request for the rest */
    so_image_check_t *b = NULL;
    so_image_check_new(ring, claims, false, &b);
    size_t out = 0;
    if (cut) {
        ret = so_image_check_resume(b, file);
        if (ret == SO_OK) ret = so_image_check_replay(b, plain, produced);
    }
    if (ret == SO_OK) ret = so_image_check_update(b, file + cut, len - cut, plain + produced, len, &out);
    if (ret == SO_OK) ret = so_image_check_finish(b, false);
    so_image_check_free(b);
    return ret;
}

static void test_own_release(const char *vectors, const char *keys_dir, const char *name)
{
    char err[512];
    char *kd = join(vectors, keys_dir);
    host_keys_t *keys = host_load_keys(kd, err, sizeof err);
    free(kd);
    CHECK(keys != NULL, "%s", err);
    if (!keys) return;
    char base[256];
    snprintf(base, sizeof base, "%s.manifest", name);
    char *mp = join(vectors, base);
    snprintf(base, sizeof base, "%s.bin", name);
    char *bp = join(vectors, base);
    size_t mlen = 0, len = 0;
    uint8_t *token = host_read_file(mp, SO_MAX_MANIFEST_SIZE, &mlen);
    uint8_t *file = host_read_file(bp, 1 << 24, &len);
    free(mp);
    free(bp);
    so_claims_t claims;
    CHECK(token && file && so_manifest_open(host_ring(keys), token, mlen, &claims, NULL, NULL) == SO_OK,
          "%s opens", name);
    uint8_t *plain = malloc(len), *reference = malloc(len);
    size_t ref_len = 0;
    CHECK(decrypt_all(host_ring(keys), file, len, 4096, reference, &ref_len) == SO_OK, "decrypts");
    int cuts = 0;
    for (size_t cut = 0; cut <= len; cut += (cut < 600 ? 37 : 331)) {
        memset(plain, 0, len);
        int ret = image_check_from(host_ring(keys), &claims, file, len, cut, plain);
        CHECK(ret == SO_OK && memcmp(plain, reference, ref_len) == 0, "%s cut at %zu: %s", name,
              cut, so_reason_name(ret) ? so_reason_name(ret) : "error");
        cuts++;
    }
    /* a resume that replays wrong plaintext is caught by the tag and the digests */
    uint8_t *bad = malloc(len);
    memcpy(bad, reference, ref_len);
    bad[100] ^= 1;
    so_image_check_t *c = NULL;
    so_image_check_new(host_ring(keys), &claims, false, &c);
    size_t out = 0;
    so_image_check_resume(c, file);
    so_image_check_replay(c, bad, 1000);
    so_image_check_update(c, file + 1512, len - 1512, bad + 1000, len, &out);
    CHECK(so_image_check_finish(c, false) == SO_REASON_ENC_DIGEST_MISMATCH,
          "wrong replay -> enc_digest_mismatch");
    so_image_check_free(c);
    printf("%s: %d interruption offsets resumed\n", name, cuts);

    /* timings (sanitizer build: slower than a release build) */
    double t0 = seconds();
    int runs = 5;
    for (int i = 0; i < runs; i++) {
        so_manifest_open(host_ring(keys), token, mlen, &claims, NULL, NULL);
    }
    double t1 = seconds();
    printf("timing: manifest decrypt+verify %.1f ms (host, this build)\n", (t1 - t0) * 1000 / runs);
    host_free_keys(keys);
    free(token);
    free(file);
    free(plain);
    free(reference);
    free(bad);
}

/* Keys at run time (rotation), wrong key roles, calls out of order. */
static void test_api(const char *vectors)
{
    char *path = join(vectors, "keys-v1/manifest_signing_pub.rotated-es256.pem");
    size_t ec_len = 0, rsa_len = 0, priv_len = 0, m_len = 0;
    uint8_t *ec = host_read_file(path, 65536, &ec_len);
    free(path);
    path = join(vectors, "keys-v1/manifest_signing_pub.pem");
    uint8_t *rsa = host_read_file(path, 65536, &rsa_len);
    free(path);
    path = join(vectors, "keys-v1/manifest_encryption_key.pem");
    uint8_t *priv = host_read_file(path, 65536, &priv_len);
    free(path);
    path = join(vectors, "ok-es256.manifest");
    uint8_t *token = host_read_file(path, SO_MAX_MANIFEST_SIZE, &m_len);
    free(path);
    so_keyring_t *ring = NULL;
    CHECK(so_keyring_new(NULL, NULL, &ring) == SO_ERR_INVALID_ARG, "an RNG is required");
    CHECK(so_keyring_new(test_rng, NULL, &ring) == SO_OK, "new ring");
    so_claims_t claims;
    CHECK(so_manifest_open(ring, token, m_len, &claims, NULL, NULL) == SO_ERR_KEY, "no keys yet");
    CHECK(so_keyring_set_manifest_key(ring, ec, ec_len) == SO_ERR_KEY, "EC key cannot decrypt");
    CHECK(so_keyring_set_image_key(ring, priv, priv_len) == SO_ERR_KEY, "RSA-4096 is not an image key");
    CHECK(so_keyring_add_freshness_key(ring, rsa, rsa_len) == SO_ERR_KEY, "freshness keys are P-256");
    CHECK(so_keyring_add_signing_key(ring, (const uint8_t *)"junk", 4) == SO_ERR_KEY, "junk PEM");
    CHECK(so_keyring_set_manifest_key(ring, priv, priv_len) == SO_OK, "manifest key");
    CHECK(so_keyring_add_signing_key(ring, rsa, rsa_len) == SO_OK, "first signing key");
    CHECK(so_manifest_open(ring, token, m_len, &claims, NULL, NULL) == SO_REASON_UNKNOWN_KEY,
          "signed by a key not yet trusted");
    CHECK(so_keyring_add_signing_key(ring, ec, ec_len) == SO_OK, "rotation adds a key");
    CHECK(so_keyring_add_signing_key(ring, ec, ec_len) == SO_OK &&
              so_keyring_signing_key_count(ring) == 2, "adding a key twice keeps one");
    so_manifest_info_t info;
    CHECK(so_manifest_open(ring, token, m_len, &claims, &info, NULL) == SO_OK &&
              strcmp(info.alg, "ES256") == 0, "accepted after the rotation");
    char kid[65];
    CHECK(so_keyring_signing_kid(ring, 1, kid) && strcmp(kid, info.kid) == 0, "kid of the key");
    /* a second open with the same ring and the same inputs gives the same result */
    so_claims_t again;
    CHECK(so_manifest_open(ring, token, m_len, &again, NULL, NULL) == SO_OK &&
              memcmp(&claims, &again, sizeof claims) == 0, "second call");
    so_image_check_t *c = NULL;
    CHECK(so_image_check_new(ring, &claims, false, &c) == SO_ERR_KEY, "no image key");
    CHECK(so_image_check_new(ring, &claims, true, &c) == SO_OK, "external mode needs no key");
    size_t out = 0;
    CHECK(so_image_check_resume(c, token) == SO_ERR_INVALID_ARG, "no resume in external mode");
    CHECK(so_image_check_finish(c, true) == SO_REASON_IMAGE_SIZE_MISMATCH, "nothing received");
    CHECK(so_image_check_finish(c, true) == SO_ERR_STATE, "finish once");
    CHECK(so_image_check_update(c, token, 1, NULL, 0, &out) == SO_ERR_STATE, "no data after finish");
    so_image_check_free(c);
    so_keyring_free(ring);
    free(ec);
    free(rsa);
    free(priv);
    free(token);
}

static void time_hashing(void)
{
    size_t n = 4u << 20;
    uint8_t *buf = calloc(1, n);
    char hex[65];
    double t0 = seconds();
    so_sha256_hex(buf, n, hex);
    double t1 = seconds();
    printf("timing: SHA-256 of 4 MiB %.1f ms (host, this build)\n", (t1 - t0) * 1000);
    free(buf);
}

/*
 * Espressif's ECIES-P256 vector (tests/fixtures/esp_encrypted_img/ecies, SOURCES.md): its test
 * app mocks the PBKDF2 over the HMAC key, so the ring gets that scalar directly (white box).
 */
static void test_espressif_ecies(const char *vectors)
{
    static const uint8_t scalar[32] = {
        0x83, 0x17, 0x93, 0x66, 0x0d, 0xe4, 0x91, 0x33, 0x66, 0xae, 0x1e, 0x37, 0x9b, 0x2c, 0xeb, 0x43,
        0x17, 0xc8, 0x87, 0x00, 0xcc, 0x07, 0x91, 0xd9, 0x8e, 0x5a, 0x2a, 0x2d, 0x5c, 0x71, 0xaf, 0x66};
    char *path = join(vectors, "../fixtures/esp_encrypted_img/ecies/image_ecc.bin");
    size_t len = 0;
    uint8_t *file = host_read_file(path, 4096, &len);
    free(path);
    CHECK(file && len == 522, "Espressif ECIES vector present");
    if (!file) {
        return;
    }
    so_keyring_t *ring = NULL;
    so_keyring_new(test_rng, NULL, &ring);
    mbedtls_pk_context *pk = &ring->image_key;
    CHECK(mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) == 0, "pk");
    mbedtls_ecp_keypair *kp = mbedtls_pk_ec(*pk);
    CHECK(mbedtls_ecp_group_load(so_ec_group(kp), MBEDTLS_ECP_DP_SECP256R1) == 0 &&
              mbedtls_mpi_read_binary(so_ec_d(kp), scalar, 32) == 0,
          "scalar");
    ring->has_image_key = true;
    uint8_t plain[600], copy[522];
    size_t plain_len = 0;
    size_t chunks[] = {len, 1, 7, 100, 511, 513, 0, 0};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        int ret = decrypt_all(ring, file, len, chunks[i], plain, &plain_len);
        CHECK(ret == SO_OK && plain_len == 10 && memcmp(plain, "test file\n", 10) == 0,
              "Espressif ECIES vector, chunk %zu: %d", chunks[i], ret);
    }
    size_t offsets[] = {4, 67, 68, 99, 390, 410, 515};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        memcpy(copy, file, len);
        copy[offsets[i]] ^= 1;
        CHECK(decrypt_all(ring, copy, len, 0, plain, &plain_len) == SO_REASON_IMAGE_DECRYPT_FAILED,
              "flip at %zu refused", offsets[i]);
    }
    memcpy(copy, file, len);
    copy[200] = 1;
    CHECK(decrypt_all(ring, copy, len, 0, plain, &plain_len) == SO_REASON_IMAGE_HEADER_INVALID,
          "reserved bytes 100..387 must be zero");
    so_keyring_free(ring);
    free(file);
}

static int failing_hmac(void *ctx, const uint8_t *msg, size_t len, uint8_t out[32])
{
    int *calls = ctx;
    (void)msg;
    (void)len;
    memset(out, 0, 32);
    return ++*calls == 7 ? -1 : 0;
}

static int zero_hmac(void *ctx, const uint8_t *msg, size_t len, uint8_t out[32])
{
    (void)ctx;
    (void)msg;
    (void)len;
    memset(out, 0, 32); /* every U is 0: the scalar 0 is not a key */
    return 0;
}

static void test_derive_image_key(void)
{
    so_keyring_t *ring = NULL;
    so_keyring_new(test_rng, NULL, &ring);
    int calls = 0;
    CHECK(so_keyring_derive_image_key(NULL, zero_hmac, NULL) == SO_ERR_INVALID_ARG, "no ring");
    CHECK(so_keyring_derive_image_key(ring, NULL, NULL) == SO_ERR_INVALID_ARG, "no callback");
    CHECK(so_keyring_derive_image_key(ring, failing_hmac, &calls) == SO_ERR_KEY && calls == 7,
          "a failing HMAC stops the derivation");
    CHECK(so_keyring_derive_image_key(ring, zero_hmac, NULL) == SO_ERR_KEY && !ring->has_image_key,
          "scalar 0 refused");
    so_keyring_free(ring);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_stream VECTORS_DIR ESPRESSIF_FIXTURE_DIR\n");
        return 2;
    }
    srand(11);
    test_espressif(argv[2]);
    test_own_release(argv[1], "keys-v1", "ok-v1");
    test_own_release(argv[1], "keys-v2-rsa3072", "ok-v2-rsa3072");
    test_own_release(argv[1], "keys-v2-ecdsa384", "ok-v2-ecdsa384");
    test_own_release(argv[1], "keys-ec-ecies", "ec-ecies-ok");
    test_espressif_ecies(argv[1]);
    test_derive_image_key();
    test_api(argv[1]);
    time_hashing();
    return test_summary("test_stream");
}
