/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Key rotation (docs/formats.md §4.4) below the manifest: the reached key set and its storage
 * blob, the walk's limits that no manifest of at most 16 KiB can reach (a statement over 8192
 * characters, a JWS header over 12288), and the DER key reader. Inputs come from tests/vectors.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host_verify.h"
#include "so_internal.h"
#include "test_util.h"

static const char *vectors;

static uint8_t *read_vector(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", vectors, name);
    uint8_t *data = host_read_file(path, 1u << 20, len);
    CHECK(data != NULL, "read %s", path);
    return data;
}

static host_keys_t *load(const char *dir)
{
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/%s", vectors, dir);
    host_keys_t *keys = host_load_keys(path, err, sizeof err);
    CHECK(keys != NULL, "%s", err);
    return keys;
}

static char *b64url(const uint8_t *in, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len * 4 / 3 + 4), *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = abc[v >> 18];
        *o++ = abc[(v >> 12) & 63];
        *o++ = abc[(v >> 6) & 63];
        *o++ = abc[v & 63];
    }
    if (len - i == 1) {
        *o++ = abc[in[i] >> 2];
        *o++ = abc[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        *o++ = abc[v >> 10];
        *o++ = abc[(v >> 4) & 63];
        *o++ = abc[(v & 15) << 2];
    }
    *o = '\0';
    return out;
}

/* The statements of the chain 1 -> 2 -> 3, from the fuzz seed's JWS header. */
static cJSON *chain_header(void)
{
    size_t len = 0;
    uint8_t *jws = read_vector("fuzz-seeds/1-jws-rot.txt", &len);
    if (!jws) {
        return NULL;
    }
    so_jws_t parsed;
    int ret = so_jws_parse((const char *)jws, len, &parsed);
    CHECK(ret == SO_OK, "seed JWS parses");
    free(jws);
    cJSON *header = parsed.header;
    parsed.header = NULL;
    so_jws_free(&parsed);
    return header;
}

static void test_reached_set_and_blob(void)
{
    host_keys_t *v1 = load("keys-v1"), *v3 = load("keys-rot-v3");
    size_t len = 0;
    uint8_t *token = read_vector("rot-chain2.manifest", &len);
    if (!v1 || !v3 || !token) {
        goto done;
    }
    so_keyring_t *ring = host_ring(v1);
    so_claims_t claims;
    so_manifest_info_t info;
    so_keyset_t *reached = NULL;
    CHECK(so_manifest_open(ring, token, len, &claims, &info, &reached) == SO_OK && reached,
          "chain 1 -> 3 walked");
    CHECK(so_keyset_version(reached) == 3 && so_keyset_count(reached) == 2 &&
              info.keyset_version == 3 && info.keyset_count == 2, "version 3, two keys");
    for (size_t i = 0; i < 2; i++) {
        char kid[65], expected[65];
        bool found = false;
        CHECK(so_keyset_kid(reached, i, kid), "kid %zu", i);
        for (size_t j = 0; j < 2; j++) {
            found |= so_keyring_signing_kid(host_ring(v3), j, expected) && !strcmp(kid, expected);
        }
        CHECK(found, "kid %zu is one of keys-rot-v3", i);
    }
    CHECK(!so_keyset_kid(reached, 2, (char[65]){0}), "no third key");
    CHECK(so_keyring_keyset_version(ring) == 1, "the ring itself is unchanged");

    /* the storage blob */
    size_t blob_len = 0;
    CHECK(so_keyset_export(reached, NULL, 0, &blob_len) == SO_OK && blob_len > 16 &&
              blob_len <= SO_KEYSET_BLOB_MAX, "blob size %zu", blob_len);
    uint8_t *blob = malloc(blob_len);
    size_t short_len = 0;
    CHECK(so_keyset_export(reached, blob, blob_len - 1, &short_len) == SO_ERR_INVALID_ARG,
          "too small a buffer");
    CHECK(so_keyset_export(reached, blob, blob_len, &blob_len) == SO_OK, "export");
    CHECK(so_keyset_blob_version(blob, blob_len) == 3, "blob version");
    for (size_t i = 0; i < blob_len; i += (i < 40 ? 1 : 97)) {
        blob[i] ^= 0x40;
        CHECK(so_keyring_load_keyset(ring, blob, blob_len) == SO_ERR_KEY &&
                  so_keyring_keyset_version(ring) == 1 && so_keyring_signing_key_count(ring) == 2,
              "byte %zu changed: refused, ring unchanged", i);
        blob[i] ^= 0x40;
    }
    CHECK(so_keyring_load_keyset(ring, blob, blob_len - 1) == SO_ERR_KEY, "truncated blob");
    CHECK(so_keyring_load_keyset(ring, blob, blob_len) == SO_OK &&
              so_keyring_keyset_version(ring) == 3 && so_keyring_signing_key_count(ring) == 2,
          "blob loaded: version 3");
    so_keyset_free(reached);
    reached = NULL;
    /* with the committed set: no walk beyond it, and the revoked key is refused */
    CHECK(so_manifest_open(ring, token, len, &claims, &info, &reached) == SO_OK && !reached &&
              info.keyset_version == 3, "committed: nothing newer to reach");
    free(token);
    token = read_vector("ok-v1.manifest", &len);
    CHECK(token && so_manifest_open(ring, token, len, &claims, NULL, &reached) ==
                       SO_REASON_UNKNOWN_KEY && !reached, "the first key is revoked");
    free(blob);
done:
    free(token);
    host_free_keys(v1);
    host_free_keys(v3);
}

/* A statement naming `key_b64` at `version`, garbage header and signature, `pad` characters of
 * padding in the payload and `prefix` as its first part. */
static char *fake_statement(const char *prefix, int version, const char *key_b64, size_t pad)
{
    size_t n = 64 + strlen(key_b64) + pad;
    char *payload = malloc(n);
    int k = snprintf(payload, n, "{\"version\":%d,\"keys\":[\"%s\"],\"pad\":\"", version, key_b64);
    memset(payload + k, 'A', pad);
    strcpy(payload + k + pad, "\"}");
    char *encoded = b64url((const uint8_t *)payload, strlen(payload));
    size_t total = strlen(prefix) + strlen(encoded) + 4;
    char *s = malloc(total);
    snprintf(s, total, "%s.%s.y", prefix, encoded);
    free(payload);
    free(encoded);
    return s;
}

static void test_walk_limits(void)
{
    host_keys_t *v2 = load("keys-rot-v2");
    cJSON *header = chain_header();
    size_t der_len = 0;
    uint8_t *der = read_vector("fuzz-seeds/7-key-ec.der", &der_len);
    if (!v2 || !header || !der) {
        goto done;
    }
    const cJSON *rot = cJSON_GetObjectItemCaseSensitive(header, "rot");
    CHECK(so_rotation_shape_ok(rot) && cJSON_GetArraySize(rot) == 2, "seed rot");
    const char *s3 = cJSON_GetArrayItem(rot, 1)->valuestring;
    char *key = b64url(der, der_len);
    const so_keyset_t *own = &host_ring(v2)->signing;
    /* an old (version 2) statement of exactly 8192 characters is skipped, one more stops */
    for (int extra = 0; extra <= 1; extra++) {
        size_t target = 8192u + (size_t)extra, pad = 0;
        char *s = fake_statement("", 2, key, pad);
        while (strlen(s) + 8 < target) { /* each byte of padding adds at most 2 characters */
            free(s);
            s = fake_statement("", 2, key, ++pad);
        }
        size_t missing = target - strlen(s);
        char *prefix = malloc(missing + 1);
        memset(prefix, 'x', missing);
        prefix[missing] = '\0';
        free(s);
        s = fake_statement(prefix, 2, key, pad);
        free(prefix);
        CHECK(strlen(s) == target, "statement of %zu characters", target);
        cJSON *chain = cJSON_CreateArray();
        cJSON_AddItemToArray(chain, cJSON_CreateString(s));
        cJSON_AddItemToArray(chain, cJSON_CreateString(s3));
        so_keyset_t *reached = NULL;
        CHECK(so_rotation_walk(own, chain, &reached) == SO_OK &&
                  (extra ? reached == NULL : so_keyset_version(reached) == 3),
              "%zu characters: %s", target, extra ? "walk stops" : "skipped");
        so_keyset_free(reached);
        cJSON_Delete(chain);
        free(s);
    }
    /* characters are counted as the reference counts them: code points, not bytes */
    {
        char prefix[401];
        for (size_t i = 0; i < 200; i++) {
            prefix[2 * i] = (char)0xC3;
            prefix[2 * i + 1] = (char)0xA9; /* U+00E9 */
        }
        prefix[400] = '\0';
        size_t pad = 0;
        char *s = fake_statement(prefix, 2, key, pad);
        while (strlen(s) - 200 < 8100) {
            free(s);
            s = fake_statement(prefix, 2, key, pad += 50);
        }
        CHECK(strlen(s) > 8192 && strlen(s) - 200 <= 8192, "bytes %zu", strlen(s));
        cJSON *chain = cJSON_CreateArray();
        cJSON_AddItemToArray(chain, cJSON_CreateString(s));
        cJSON_AddItemToArray(chain, cJSON_CreateString(s3));
        so_keyset_t *reached = NULL;
        CHECK(so_rotation_walk(own, chain, &reached) == SO_OK && so_keyset_version(reached) == 3,
              "non-ASCII in an old statement's header: skipped (it is short enough)");
        so_keyset_free(reached);
        cJSON_Delete(chain);
        free(s);
    }
    /* unreadable old payloads stop the walk; readable ones are skipped */
    {
        static const char *const junk[] = {"x.e30.y", "x.y", "x.e30.y.z", "", "..",
                                           "x.eyJ2ZXJzaW9uIjoyLCJrZXlzIjpbXX0.y"};
        for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
            cJSON *chain = cJSON_CreateArray();
            cJSON_AddItemToArray(chain, cJSON_CreateString(junk[i]));
            cJSON_AddItemToArray(chain, cJSON_CreateString(s3));
            so_keyset_t *reached = NULL;
            CHECK(so_rotation_walk(own, chain, &reached) == SO_OK && reached == NULL,
                  "unreadable '%s' stops the walk", junk[i]);
            cJSON_Delete(chain);
        }
    }
    free(key);
done:
    free(der);
    cJSON_Delete(header);
    host_free_keys(v2);
}

static void test_jws_header_limit(void)
{
    /* a header of exactly 12288 characters (9216 bytes) is read, 12290 (9217) is not */
    for (size_t raw = 9216; raw <= 9217; raw++) {
        char *json = malloc(raw + 1);
        const char *start = "{\"alg\":\"ES256\",\"typ\":\"x\",\"kid\":\"";
        size_t n = strlen(start);
        memcpy(json, start, n);
        memset(json + n, 'k', raw - n - 2);
        memcpy(json + raw - 2, "\"}", 3);
        char *hdr = b64url((const uint8_t *)json, raw);
        size_t total = strlen(hdr) + 16;
        char *token = malloc(total);
        snprintf(token, total, "%s.e30.AAAA", hdr);
        so_jws_t jws;
        int ret = so_jws_parse(token, strlen(token), &jws);
        CHECK(ret == (raw == 9216 ? SO_OK : SO_REASON_MANIFEST_MALFORMED),
              "JWS header of %zu characters: %d", strlen(hdr), ret);
        so_jws_free(&jws);
        free(json);
        free(hdr);
        free(token);
    }
}

static void test_spki(void)
{
    size_t ec_len = 0, comp_len = 0, rsa_len = 0;
    uint8_t *ec = read_vector("fuzz-seeds/7-key-ec.der", &ec_len);
    uint8_t *comp = read_vector("fuzz-seeds/7-key-ec-compressed.der", &comp_len);
    uint8_t *rsa = read_vector("fuzz-seeds/7-key-rsa.der", &rsa_len);
    if (!ec || !comp || !rsa) {
        goto done;
    }
    char a[65], b[65], c[65];
    CHECK(so_spki_key_id(ec, ec_len, a) == SO_OK, "P-256");
    CHECK(so_spki_key_id(comp, comp_len, b) == SO_OK && !strcmp(a, b),
          "compressed point: the same key id");
    CHECK(so_spki_key_id(rsa, rsa_len, c) == SO_OK, "RSA-3072");
    /* the canonical DER is what mbedTLS writes */
    so_trusted_key_t key;
    memset(&key, 0, sizeof key);
    mbedtls_pk_init(&key.pk);
    for (int i = 0; i < 2; i++) {
        const uint8_t *in = i ? rsa : comp;
        size_t in_len = i ? rsa_len : comp_len;
        uint8_t out[1200];
        CHECK(so_spki_parse(in, in_len, &key) == SO_OK && key.usable, "parse %d", i);
        int n = mbedtls_pk_write_pubkey_der(&key.pk, out, sizeof out);
        CHECK(n > 0 && (size_t)n == key.der_len && !memcmp(out + sizeof out - n, key.der, key.der_len),
              "canonical DER %d", i);
        so_trusted_key_clear(&key);
    }
    uint8_t *copy = malloc(rsa_len + 1);
    /* an even modulus is read (key id) but never verifies; an even exponent is refused */
    memcpy(copy, rsa, rsa_len);
    copy[rsa_len - 6] &= 0xFE;
    CHECK(so_spki_parse(copy, rsa_len, &key) == SO_OK && !key.usable, "even modulus: unusable");
    so_trusted_key_clear(&key);
    memcpy(copy, rsa, rsa_len);
    copy[rsa_len - 1] = 0x02;
    CHECK(so_spki_key_id(copy, rsa_len, c) == SO_ERR_KEY, "even exponent");
    memcpy(copy, rsa, rsa_len);
    copy[rsa_len] = 0;
    CHECK(so_spki_key_id(copy, rsa_len + 1, c) == SO_ERR_KEY, "trailing byte");
    CHECK(so_spki_key_id(rsa, rsa_len - 1, c) == SO_ERR_KEY, "truncated");
    CHECK(so_spki_key_id(rsa, 0, c) == SO_ERR_KEY, "empty");
    memcpy(copy, ec, ec_len);
    copy[ec_len - 1] ^= 1;
    CHECK(so_spki_key_id(copy, ec_len, c) == SO_ERR_KEY, "point off the curve");
    memcpy(copy, ec, ec_len);
    copy[ec_len - 65] = 0x05;
    CHECK(so_spki_key_id(copy, ec_len, c) == SO_ERR_KEY, "unknown point form");
    memcpy(copy, comp, comp_len);
    copy[comp_len - 33] ^= 1; /* the other y */
    CHECK(so_spki_key_id(copy, comp_len, c) == SO_OK && strcmp(a, c) != 0, "other parity");
    free(copy);
done:
    free(ec);
    free(comp);
    free(rsa);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The cost of walking: the same chain-2 manifest at version 1 (two statements verified) and
 * at version 3 (both skipped, their payloads still read). */
static void time_walk(void)
{
    size_t len = 0;
    uint8_t *token = read_vector("rot-chain2.manifest", &len);
    const char *dirs[] = {"keys-v1", "keys-rot-v3"};
    for (size_t d = 0; token && d < 2; d++) {
        host_keys_t *keys = load(dirs[d]);
        if (!keys) {
            continue;
        }
        so_claims_t claims;
        so_keyset_t *reached = NULL;
        double t0 = seconds();
        int runs = 5, ok = 0;
        for (int i = 0; i < runs; i++) {
            ok += so_manifest_open(host_ring(keys), token, len, &claims, NULL, &reached) == SO_OK;
            so_keyset_free(reached);
            reached = NULL;
        }
        double t1 = seconds();
        CHECK(ok == runs, "%s opens", dirs[d]);
        printf("timing: manifest with a 2-statement chain, device at %s: %.1f ms (host, this "
               "build)\n", dirs[d], (t1 - t0) * 1000 / runs);
        host_free_keys(keys);
    }
    free(token);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_rotation VECTORS_DIR\n");
        return 2;
    }
    vectors = argv[1];
    test_reached_set_and_blob();
    test_walk_limits();
    test_jws_header_limit();
    test_spki();
    time_walk();
    return test_summary("test_rotation");
}
