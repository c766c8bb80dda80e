/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Device reports (docs/formats.md §11): base64url encoding, the report key (generation, blob,
 * key id and `pub` against RFC 6979's P-256 test key), the payload bytes, every member's bounds,
 * output buffers of every size, and the signed token read back by the core's own JWS verifier.
 * Prints the time one signature takes (this build has ASan/UBSan and -O1: an upper bound).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "so_internal.h"
#include "test_util.h"

/* A deterministic test RNG: SHA-256 of (seed, counter). Never for real keys. */
typedef struct {
    uint32_t seed;
    uint32_t counter;
} test_rng_t;

static int test_rng(void *ctx, unsigned char *out, size_t len)
{
    test_rng_t *rng = ctx;
    while (len) {
        uint8_t in[8], block[32];
        memcpy(in, &rng->seed, 4);
        memcpy(in + 4, &rng->counter, 4);
        rng->counter++;
        so_sha256(in, sizeof in, block);
        size_t n = len < sizeof block ? len : sizeof block;
        memcpy(out, block, n);
        out += n;
        len -= n;
    }
    return 0;
}

static int failing_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    (void)out;
    (void)len;
    return -1;
}

/* RFC 6979 A.2.5: the P-256 test key (private scalar x, public point Ux || Uy). */
static const char RFC6979_X[] = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
static const char RFC6979_UXY[] =
    "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
    "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
/* n - 1 and n of P-256 */
static const char P256_N_MINUS_1[] =
    "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550";
static const char P256_N[] = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

static void hex_decode(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* A blob around `scalar_hex` with a correct CRC. */
static void make_blob(const char *scalar_hex, uint8_t blob[SO_REPORT_KEY_BLOB_SIZE])
{
    memset(blob, 0, SO_REPORT_KEY_BLOB_SIZE);
    memcpy(blob, "SORK", 4);
    blob[4] = 1;
    hex_decode(scalar_hex, blob + 8, 32);
    uint32_t crc = so_crc32(blob, 40);
    for (size_t i = 0; i < 4; i++) {
        blob[40 + i] = (uint8_t)(crc >> (8 * i));
    }
}

static void test_b64url_encode(void)
{
    test_rng_t rng = {.seed = 1};
    for (size_t len = 1; len <= 70; len++) {
        uint8_t in[70], back[70];
        char text[100];
        test_rng(&rng, in, len);
        size_t n = so_b64url_encode(in, len, text, sizeof text);
        size_t m = 0;
        CHECK(n == (len * 4 + 2) / 3 && strlen(text) == n, "length %zu -> %zu", len, n);
        CHECK(so_b64url_decode(text, n, back, sizeof back, &m) && m == len &&
                  !memcmp(in, back, len),
              "round trip of %zu bytes", len);
        CHECK(so_b64url_encode(in, len, text, n) == 0, "no room for the NUL: 0");
    }
    char text[8];
    CHECK(so_b64url_encode((const uint8_t *)"hi", 2, text, sizeof text) == 3 &&
              !strcmp(text, "aGk"),
          "hi");
    CHECK(so_b64url_encode((const uint8_t *)"\xfb\xff", 2, text, sizeof text) == 3 &&
              !strcmp(text, "-_8"),
          "url alphabet: %s", text);
    CHECK(so_b64url_encode((const uint8_t *)"", 0, text, sizeof text) == 0, "empty: 0");
}

static void test_key(void)
{
    uint8_t blob[SO_REPORT_KEY_BLOB_SIZE + 1];
    so_report_key_t *key = NULL;
    test_rng_t rng = {.seed = 2};

    /* RFC 6979's key: the public point, hence pub and kid, as §10 computes them */
    make_blob(RFC6979_X, blob);
    CHECK(so_report_key_load(blob, SO_REPORT_KEY_BLOB_SIZE, test_rng, &rng, &key) == SO_OK,
          "load RFC 6979 key");
    if (key) {
        uint8_t spki[91], expect_spki[91];
        static const uint8_t prefix[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
        memcpy(expect_spki, prefix, 26);
        expect_spki[26] = 0x04;
        hex_decode(RFC6979_UXY, expect_spki + 27, 64);
        char pub[SO_REPORT_PUB_LEN + 1], kid[65], expect_kid[65];
        so_report_key_pub(key, pub);
        so_report_key_kid(key, kid);
        size_t n = 0;
        CHECK(strlen(pub) == SO_REPORT_PUB_LEN, "pub length %zu", strlen(pub));
        CHECK(so_b64url_decode(pub, strlen(pub), spki, sizeof spki, &n) && n == 91 &&
                  !memcmp(spki, expect_spki, 91),
              "pub is the SPKI DER of the RFC 6979 public key");
        so_sha256_hex(expect_spki, 91, expect_kid);
        CHECK(!strcmp(kid, expect_kid), "kid %s", kid);
        /* the core's SPKI reader agrees */
        char kid2[65];
        CHECK(so_spki_key_id(spki, 91, kid2) == SO_OK && !strcmp(kid2, kid), "so_spki_key_id");
        uint8_t again[SO_REPORT_KEY_BLOB_SIZE];
        size_t len = 0;
        CHECK(so_report_key_export(key, again, sizeof again, &len) == SO_OK &&
                  len == SO_REPORT_KEY_BLOB_SIZE && !memcmp(again, blob, len),
              "export gives the blob back");
        CHECK(so_report_key_export(key, again, SO_REPORT_KEY_BLOB_SIZE - 1, &len) == SO_ERR_BUFFER,
              "export into a short buffer");
        so_report_key_free(key);
        key = NULL;
    }

    /* a blob of anything else: SO_ERR_KEY, and *out NULL */
    struct {
        const char *what;
        size_t len;
        size_t offset; /* byte to change (SIZE_MAX: none) */
        uint8_t value;
        bool fix_crc;
    } bad[] = {
        {"one byte short", SO_REPORT_KEY_BLOB_SIZE - 1, SIZE_MAX, 0, false},
        {"one byte long", SO_REPORT_KEY_BLOB_SIZE + 1, SIZE_MAX, 0, false},
        {"empty", 0, SIZE_MAX, 0, false},
        {"magic", SO_REPORT_KEY_BLOB_SIZE, 0, 'X', true},
        {"format 2", SO_REPORT_KEY_BLOB_SIZE, 4, 2, true},
        {"padding", SO_REPORT_KEY_BLOB_SIZE, 6, 1, true},
        {"CRC", SO_REPORT_KEY_BLOB_SIZE, 41, 0xAA, false},
        {"scalar bit flip without CRC", SO_REPORT_KEY_BLOB_SIZE, 20, 0x55, false},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        make_blob(RFC6979_X, blob);
        blob[SO_REPORT_KEY_BLOB_SIZE] = 0;
        if (bad[i].offset != SIZE_MAX) {
            blob[bad[i].offset] = bad[i].value;
        }
        if (bad[i].fix_crc) {
            uint32_t crc = so_crc32(blob, 40);
            for (size_t k = 0; k < 4; k++) {
                blob[40 + k] = (uint8_t)(crc >> (8 * k));
            }
        }
        key = (so_report_key_t *)blob; /* must be reset */
        CHECK(so_report_key_load(blob, bad[i].len, test_rng, &rng, &key) == SO_ERR_KEY && !key,
              "blob with bad %s refused", bad[i].what);
    }
    static const char ZERO[] = "0000000000000000000000000000000000000000000000000000000000000000";
    const char *scalars[] = {ZERO, P256_N, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"};
    for (size_t i = 0; i < 3; i++) {
        make_blob(scalars[i], blob);
        CHECK(so_report_key_load(blob, SO_REPORT_KEY_BLOB_SIZE, test_rng, &rng, &key) ==
                      SO_ERR_KEY &&
                  !key,
              "scalar %s refused", scalars[i]);
    }
    make_blob(P256_N_MINUS_1, blob);
    CHECK(so_report_key_load(blob, SO_REPORT_KEY_BLOB_SIZE, test_rng, &rng, &key) == SO_OK,
          "scalar n-1 is a key");
    so_report_key_free(key);
    key = NULL;
    make_blob(RFC6979_X, blob);
    CHECK(so_report_key_load(NULL, 0, test_rng, &rng, &key) == SO_ERR_INVALID_ARG, "NULL blob");
    CHECK(so_report_key_load(blob, SO_REPORT_KEY_BLOB_SIZE, NULL, NULL, &key) == SO_ERR_INVALID_ARG,
          "NULL rng");

    /* generation: two keys differ; each survives its blob */
    so_report_key_t *a = NULL, *b = NULL, *a2 = NULL;
    CHECK(so_report_key_generate(test_rng, &rng, &a) == SO_OK, "generate a");
    CHECK(so_report_key_generate(test_rng, &rng, &b) == SO_OK, "generate b");
    CHECK(so_report_key_generate(failing_rng, NULL, &key) == SO_ERR_CRYPTO && !key,
          "a failing RNG is SO_ERR_CRYPTO");
    if (a && b) {
        char ka[65], kb[65], ka2[65];
        so_report_key_kid(a, ka);
        so_report_key_kid(b, kb);
        CHECK(strcmp(ka, kb) != 0, "two keys, two ids");
        size_t len = 0;
        CHECK(so_report_key_export(a, blob, sizeof blob, &len) == SO_OK, "export a");
        CHECK(so_report_key_load(blob, len, test_rng, &rng, &a2) == SO_OK, "load a");
        if (a2) {
            so_report_key_kid(a2, ka2);
            CHECK(!strcmp(ka, ka2), "a's id survives its blob");
        }
    }
    so_report_key_free(a);
    so_report_key_free(b);
    so_report_key_free(a2);
}

static so_report_t sample(void)
{
    so_report_t r = {
        .device_id = "esp32-a1b2c3d4e5f6",
        .device_type = "sensor",
        .event = SO_EVENT_REJECTED,
        .reason = SO_REASON_ROLLBACK,
        .detail = "say \"no\" \\ twice",
        .seq = 7,
        .secure_version = 2,
        .version = "1.2.3",
        .release = 5,
        .counter = 42,
    };
    return r;
}

static so_report_key_t *rfc_key(void)
{
    uint8_t blob[SO_REPORT_KEY_BLOB_SIZE];
    make_blob(RFC6979_X, blob);
    test_rng_t rng = {.seed = 3};
    so_report_key_t *key = NULL;
    so_report_key_load(blob, sizeof blob, test_rng, &rng, &key);
    return key;
}

static void test_payload(void)
{
    so_report_key_t *key = rfc_key();
    if (!key) {
        CHECK(false, "no key");
        return;
    }
    char pub[SO_REPORT_PUB_LEN + 1];
    so_report_key_pub(key, pub);
    char expect[1024], out[1024];
    snprintf(expect, sizeof expect,
             "{\"counter\":42,\"detail\":\"say \\\"no\\\" \\\\ twice\",\"device_id\":"
             "\"esp32-a1b2c3d4e5f6\",\"device_type\":\"sensor\",\"event\":\"rejected\",\"pub\":"
             "\"%s\",\"reason\":\"rollback\",\"release\":5,\"secure_version\":2,\"seq\":7,"
             "\"version\":\"1.2.3\"}",
             pub);
    so_report_t r = sample();
    size_t len = 0;
    CHECK(so_report_payload(key, &r, out, sizeof out, &len) == SO_OK && !strcmp(out, expect) &&
              len == strlen(expect),
          "payload:\n%s\n%s", out, expect);
    /* a null reason, an empty (NULL) detail, the largest numbers */
    r.event = SO_EVENT_CONFIRMED;
    r.reason = 0;
    r.detail = NULL;
    r.counter = SO_MAX_REPORT_COUNTER;
    r.seq = r.release = SO_MAX_SEQ;
    r.secure_version = SO_MAX_SECURE_VERSION;
    CHECK(so_report_payload(key, &r, out, sizeof out, &len) == SO_OK &&
              strstr(out, "{\"counter\":9007199254740991,\"detail\":\"\",") == out &&
              strstr(out, "\"reason\":null,\"release\":2147483647,\"secure_version\":255,"
                          "\"seq\":2147483647,") != NULL,
          "bounds and null: %s", out);
    /* every size of buffer below the payload's: SO_ERR_BUFFER and "" */
    size_t need = len + 1;
    for (size_t cap = 1; cap < need; cap++) {
        memset(out, 'x', sizeof out);
        int ret = so_report_payload(key, &r, out, cap, &len);
        CHECK(ret == SO_ERR_BUFFER && out[0] == '\0', "cap %zu: %d", cap, ret);
    }
    CHECK(so_report_payload(key, &r, out, need, &len) == SO_OK, "cap exactly enough");
    CHECK(so_report_payload(key, &r, out, 0, &len) == SO_ERR_INVALID_ARG, "cap 0");
    so_report_key_free(key);
}

static void test_fields(void)
{
    char long_name[SO_MAX_NAME_LENGTH + 2], detail[SO_MAX_REPORT_DETAIL + 2],
        version[SO_MAX_REPORT_VERSION + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    memset(detail, 'd', sizeof detail - 1);
    detail[sizeof detail - 1] = '\0';
    memset(version, 'v', sizeof version - 1);
    version[sizeof version - 1] = '\0';
    const char *field = NULL;
    so_report_t r = sample();
    CHECK(so_report_check(&r, &field) == SO_OK && field == NULL, "sample is valid");
#define BAD(member, value, name)                                                                  \
    do {                                                                                          \
        so_report_t x = sample();                                                                 \
        x.member = value;                                                                         \
        field = NULL;                                                                             \
        int ret_ = so_report_check(&x, &field);                                                   \
        CHECK(ret_ == SO_ERR_FIELD && field && !strcmp(field, name), "%s = %s: %d %s", #member,   \
              #value, ret_, field ? field : "(null)");                                            \
    } while (0)
#define GOOD(member, value)                                                                       \
    do {                                                                                          \
        so_report_t x = sample();                                                                 \
        x.member = value;                                                                         \
        CHECK(so_report_check(&x, NULL) == SO_OK, "%s = %s should pass", #member, #value);        \
    } while (0)
    BAD(device_id, NULL, "device_id");
    BAD(device_id, "", "device_id");
    BAD(device_id, ".hidden", "device_id");
    BAD(device_id, "a..b", "device_id");
    BAD(device_id, "a/b", "device_id");
    BAD(device_id, "a b", "device_id");
    BAD(device_id, long_name, "device_id");
    BAD(device_type, "x\n", "device_type");
    BAD(event, SO_EVENT_COUNT, "event");
    BAD(event, (so_event_t)-1, "event");
    BAD(reason, -1, "reason");
    BAD(reason, SO_REASON_COUNT, "reason");
    BAD(reason, 0, "reason"); /* rejected needs one */
    BAD(detail, detail, "detail");
    BAD(detail, "tab\there", "detail");
    BAD(detail, "del\x7f", "detail");
    BAD(detail, "caf\xc3\xa9", "detail");
    BAD(seq, SO_MAX_SEQ + 1u, "seq");
    BAD(secure_version, 256, "secure_version");
    BAD(version, NULL, "version");
    BAD(version, version, "version");
    BAD(version, "1.0\r", "version");
    BAD(release, 0x80000000u, "release");
    BAD(counter, 0, "counter");
    BAD(counter, SO_MAX_REPORT_COUNTER + 1, "counter");
    long_name[SO_MAX_NAME_LENGTH] = '\0';
    detail[SO_MAX_REPORT_DETAIL] = '\0';
    version[SO_MAX_REPORT_VERSION] = '\0';
    GOOD(device_id, long_name);
    GOOD(detail, detail);
    GOOD(detail, NULL);
    GOOD(version, version);
    GOOD(version, "");
    GOOD(reason, SO_REASON_REDIRECT_REFUSED);
    GOOD(counter, SO_MAX_REPORT_COUNTER);
    GOOD(seq, 0);
    {
        so_report_t x = sample();
        x.event = SO_EVENT_FAILED;
        x.reason = 0;
        CHECK(so_report_check(&x, NULL) == SO_OK, "failed without a reason");
    }
#undef BAD
#undef GOOD
    CHECK(so_report_check(NULL, &field) == SO_ERR_INVALID_ARG, "NULL report");
    so_report_key_t *key = rfc_key();
    char out[SO_REPORT_TOKEN_MAX];
    test_rng_t rng = {.seed = 4};
    r.counter = 0;
    memset(out, 'x', sizeof out);
    CHECK(so_report_sign(key, test_rng, &rng, &r, out, sizeof out, NULL) == SO_ERR_FIELD &&
              out[0] == '\0',
          "sign refuses a bad member");
    so_report_key_free(key);
}

/* Split a token and verify it with the core's JWS reader (§4.3 rules, typ fota-report+jwt). */
static int verify_token(const char *token, const char *pub, uint8_t **payload, size_t *payload_len)
{
    uint8_t der[128];
    size_t der_len = 0;
    if (!so_b64url_decode(pub, strlen(pub), der, sizeof der, &der_len)) {
        return -100;
    }
    so_trusted_key_t key;
    memset(&key, 0, sizeof key);
    mbedtls_pk_init(&key.pk);
    int ret = so_spki_parse(der, der_len, &key);
    if (ret == SO_OK) {
        ret = so_jws_open(&key, 1, token, strlen(token), "fota-report+jwt", SO_JWS_MEMBERS_BASIC,
                          payload, payload_len, NULL);
    }
    so_trusted_key_clear(&key);
    return ret;
}

static void test_sign(void)
{
    so_report_key_t *key = rfc_key();
    test_rng_t rng = {.seed = 5};
    so_report_key_t *other = NULL;
    so_report_key_generate(test_rng, &rng, &other);
    if (!key || !other) {
        CHECK(false, "no keys");
        return;
    }
    char pub[SO_REPORT_PUB_LEN + 1], other_pub[SO_REPORT_PUB_LEN + 1], kid[65];
    so_report_key_pub(key, pub);
    so_report_key_pub(other, other_pub);
    so_report_key_kid(key, kid);
    so_report_t r = sample();
    char token[SO_REPORT_TOKEN_MAX], again[SO_REPORT_TOKEN_MAX];
    size_t len = 0, len2 = 0;
    CHECK(so_report_sign(key, test_rng, &rng, &r, token, sizeof token, &len) == SO_OK &&
              len == strlen(token),
          "sign");
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    CHECK(verify_token(token, pub, &payload, &payload_len) == SO_OK, "the core verifies it");
    char expect[1024];
    size_t expect_len = 0;
    so_report_payload(key, &r, expect, sizeof expect, &expect_len);
    CHECK(payload && payload_len == expect_len && !memcmp(payload, expect, expect_len),
          "payload round trip");
    free(payload);
    payload = NULL;
    /* the header, as the reference writes it */
    const char *dot = strchr(token, '.');
    uint8_t header[200];
    size_t header_len = 0;
    char expect_header[160];
    snprintf(expect_header, sizeof expect_header,
             "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"fota-report+jwt\"}", kid);
    CHECK(dot && so_b64url_decode(token, (size_t)(dot - token), header, sizeof header,
                                  &header_len) &&
              header_len == strlen(expect_header) && !memcmp(header, expect_header, header_len),
          "header");
    /* RFC 6979: the same report gives the same token, whatever the blinding RNG */
    test_rng_t rng2 = {.seed = 99};
    CHECK(so_report_sign(key, test_rng, &rng2, &r, again, sizeof again, &len2) == SO_OK &&
              len2 == len && !strcmp(token, again),
          "deterministic signature");
    /* another key does not verify it: its kid is not the other key's (unknown_key), and with
     * the kid forced the signature is bad */
    CHECK(verify_token(token, other_pub, &payload, &payload_len) == SO_REASON_UNKNOWN_KEY,
          "another key: unknown_key");
    char flipped[SO_REPORT_TOKEN_MAX];
    memcpy(flipped, token, len + 1);
    flipped[len - 2] = flipped[len - 2] == 'A' ? 'B' : 'A';
    CHECK(verify_token(flipped, pub, &payload, &payload_len) == SO_REASON_BAD_SIGNATURE,
          "a changed signature: bad_signature");
    /* every buffer size below the token's */
    for (size_t cap = 1; cap <= len; cap++) {
        memset(again, 'x', sizeof again);
        int ret = so_report_sign(key, test_rng, &rng, &r, again, cap, NULL);
        CHECK(ret == SO_ERR_BUFFER && again[0] == '\0', "cap %zu: %d", cap, ret);
    }
    CHECK(so_report_sign(key, test_rng, &rng, &r, again, len + 1, NULL) == SO_OK, "exact cap");
    CHECK(so_report_sign(NULL, test_rng, &rng, &r, again, sizeof again, NULL) ==
              SO_ERR_INVALID_ARG,
          "NULL key");
    CHECK(so_report_sign(key, NULL, NULL, &r, again, sizeof again, NULL) == SO_ERR_INVALID_ARG,
          "NULL rng");

    /* the longest report: every string at its limit, made of characters JSON escapes */
    char id[SO_MAX_NAME_LENGTH + 1], detail[SO_MAX_REPORT_DETAIL + 1],
        version[SO_MAX_REPORT_VERSION + 1];
    memset(id, 'z', SO_MAX_NAME_LENGTH);
    id[SO_MAX_NAME_LENGTH] = '\0';
    memset(detail, '"', SO_MAX_REPORT_DETAIL);
    detail[SO_MAX_REPORT_DETAIL] = '\0';
    memset(version, '\\', SO_MAX_REPORT_VERSION);
    version[SO_MAX_REPORT_VERSION] = '\0';
    so_report_t big = {
        .device_id = id, .device_type = id, .event = SO_EVENT_DOWNLOADING,
        .reason = SO_REASON_SECURE_BOOT_SIGNATURE_INVALID, .detail = detail, .seq = SO_MAX_SEQ,
        .secure_version = SO_MAX_SECURE_VERSION, .version = version, .release = SO_MAX_SEQ,
        .counter = SO_MAX_REPORT_COUNTER,
    };
    CHECK(so_report_payload(key, &big, expect, sizeof expect, &expect_len) == SO_OK &&
              expect_len == 928,
          "longest payload: %zu bytes", expect_len);
    CHECK(so_report_sign(key, test_rng, &rng, &big, token, sizeof token, &len) == SO_OK &&
              len == 1476 && len < SO_REPORT_TOKEN_MAX && len <= SO_MAX_REPORT_SIZE,
          "longest token: %zu characters", len);
    printf("longest report token: %zu characters; the sample report: %zu\n", len, strlen(again));
    CHECK(verify_token(token, pub, &payload, &payload_len) == SO_OK, "longest verifies");
    free(payload);

    /* timing (sanitizers on, -O1: an upper bound for this machine) */
    enum { ROUNDS = 50 };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < ROUNDS; i++) {
        r.counter = 100 + (uint64_t)i;
        so_report_sign(key, test_rng, &rng, &r, token, sizeof token, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) /
                ROUNDS;
    printf("so_report_sign: %.0f us per report (host, ASan+UBSan, -O1)\n", us);
    so_report_key_free(key);
    so_report_key_free(other);
}

int main(void)
{
    test_b64url_encode();
    test_key();
    test_payload();
    test_fields();
    test_sign();
    return test_summary("report");
}
