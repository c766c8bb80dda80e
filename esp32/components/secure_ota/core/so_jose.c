/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The manifest envelope (docs/formats.md §4): outer JWE (RSA-OAEP-256 + A256GCM), inner JWS
 * (PS256/ES256, key by kid). Checks run in the order of §4.2 and §4.3; the first failure is
 * the reason.
 *
 * Beyond the text of §4, the reference implementation (Python, joserfc 1.x) also refuses at
 * the cryptographic step (step 9 of §4.2 -> manifest_decrypt_failed, step 7 of §4.3 ->
 * bad_signature): a segment whose unused low bits are not zero, a protected header member that
 * is not a registered JOSE header parameter or has the wrong type, "b64" other than true, a
 * JWE header segment longer than 1024 characters, and a JWS header segment longer than 512 or
 * signature segment longer than 1024. We refuse the same inputs at the same step so that both
 * implementations give the same reason for every input (see esp32/README.md).
 */
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

#define JWE_HEADER_SEGMENT_MAX 1024u
#define JWS_HEADER_SEGMENT_MAX 512u
#define JWS_SIGNATURE_SEGMENT_MAX 1024u
#define JWS_PAYLOAD_SEGMENT_MAX 128000u

typedef struct {
    const char *p;
    size_t n;
} span_t;

/* Split `token` into exactly `count` dot-separated parts, each in the base64url alphabet. */
static bool split_compact(const char *token, size_t len, span_t *parts, size_t count)
{
    size_t part = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || token[i] == '.') {
            if (part >= count) {
                return false;
            }
            parts[part].p = token + start;
            parts[part].n = i - start;
            part++;
            start = i + 1;
        }
    }
    if (part != count) {
        return false;
    }
    for (size_t k = 0; k < count; k++) {
        if (!so_b64url_alphabet(parts[k].p, parts[k].n)) {
            return false;
        }
    }
    return true;
}

static bool all_ascii(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 0x80) {
            return false;
        }
    }
    return true;
}

/* Decode a segment into a fresh buffer (at least 1 byte allocated). */
static int decode_alloc(span_t seg, uint8_t **out, size_t *out_len, bool *canonical)
{
    size_t cap = so_b64url_decoded_len(seg.n) + 1;
    *out = malloc(cap);
    if (!*out) {
        return SO_ERR_NO_MEM;
    }
    if (!so_b64url_decode(seg.p, seg.n, *out, cap, out_len, canonical)) {
        free(*out);
        *out = NULL;
        return SO_REASON_MANIFEST_MALFORMED;
    }
    return SO_OK;
}

/* Decode a JOSE protected header into a strict-JSON object. */
static int decode_header(span_t seg, cJSON **header, bool *canonical)
{
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    int ret = decode_alloc(seg, &raw, &raw_len, canonical);
    if (ret != SO_OK) {
        return ret;
    }
    bool no_mem = false;
    *header = so_json_parse(raw, raw_len, NULL, &no_mem);
    free(raw);
    if (!*header) {
        return no_mem ? SO_ERR_NO_MEM : SO_REASON_MANIFEST_MALFORMED;
    }
    return SO_OK;
}

static bool string_is(const cJSON *header, const char *name, const char *value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(header, name);
    return cJSON_IsString(item) && strcmp(item->valuestring, value) == 0;
}

static bool has_member(const cJSON *header, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(header, name) != NULL;
}

static bool is_string_list(const cJSON *item)
{
    if (!cJSON_IsArray(item)) {
        return false;
    }
    for (const cJSON *v = item->child; v; v = v->next) {
        if (!cJSON_IsString(v)) {
            return false;
        }
    }
    return true;
}

static bool is_url(const cJSON *item)
{
    return cJSON_IsString(item) && (strncmp(item->valuestring, "http://", 7) == 0 ||
                                    strncmp(item->valuestring, "https://", 8) == 0);
}

/* The header members the reference's JOSE library admits, with their types. */
static bool registered_header(const cJSON *header, bool jwe)
{
    for (const cJSON *m = header->child; m; m = m->next) {
        const char *k = m->string;
        bool ok;
        if (!strcmp(k, "alg") || !strcmp(k, "kid") || !strcmp(k, "x5t") ||
            !strcmp(k, "x5t#S256") || !strcmp(k, "typ") || !strcmp(k, "cty")) {
            ok = cJSON_IsString(m);
        } else if (!strcmp(k, "jku") || !strcmp(k, "x5u")) {
            ok = is_url(m);
        } else if (!strcmp(k, "jwk")) {
            ok = cJSON_IsObject(m);
        } else if (!strcmp(k, "x5c") || !strcmp(k, "crit")) {
            ok = is_string_list(m);
        } else if (!strcmp(k, "b64")) {
            ok = cJSON_IsTrue(m); /* false would need "crit", which we refuse */
        } else if (jwe && (!strcmp(k, "enc") || !strcmp(k, "zip"))) {
            ok = cJSON_IsString(m);
        } else {
            ok = false;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* ---- JWS ------------------------------------------------------------------------------ */

static int verify_signature(so_trusted_key_t *key, bool ps256, span_t signing_input,
                            const uint8_t *sig, size_t sig_len)
{
    uint8_t hash[32];
    so_sha256((const uint8_t *)signing_input.p, signing_input.n, hash);
    if (ps256) {
        if (mbedtls_pk_get_type(&key->pk) != MBEDTLS_PK_RSA) {
            return SO_REASON_BAD_SIGNATURE;
        }
        mbedtls_rsa_context *rsa = mbedtls_pk_rsa(key->pk);
        if (sig_len != mbedtls_rsa_get_len(rsa) || so_rsa_pss_sha256_verify(rsa, hash, sig) != 0) {
            return SO_REASON_BAD_SIGNATURE;
        }
        return SO_OK;
    }
    if (so_pk_curve(&key->pk) != MBEDTLS_ECP_DP_SECP256R1 || sig_len != 64) {
        return SO_REASON_BAD_SIGNATURE;
    }
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(key->pk);
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    int ret = SO_REASON_BAD_SIGNATURE;
    if (mbedtls_mpi_read_binary(&r, sig, 32) == 0 && mbedtls_mpi_read_binary(&s, sig + 32, 32) == 0 &&
        mbedtls_ecdsa_verify(so_ec_group(ec), hash, 32, so_ec_point(ec), &r, &s) == 0) {
        ret = SO_OK;
    }
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return ret;
}

int so_jws_open(const so_trusted_key_t *keys, size_t key_count, const char *token, size_t len,
                const char *typ, uint8_t **payload, size_t *payload_len, so_manifest_info_t *info)
{
    span_t parts[3];
    cJSON *header = NULL;
    uint8_t *body = NULL, *sig = NULL;
    size_t body_len = 0, sig_len = 0;
    bool header_canonical = true, body_canonical = true, sig_canonical = true;
    int ret;

    *payload = NULL;
    *payload_len = 0;
    if (!all_ascii((const uint8_t *)token, len) || !split_compact(token, len, parts, 3)) {
        return SO_REASON_MANIFEST_MALFORMED;
    }
    ret = decode_header(parts[0], &header, &header_canonical);
    if (ret != SO_OK) {
        goto done;
    }
    bool ps256 = string_is(header, "alg", "PS256");
    if ((!ps256 && !string_is(header, "alg", "ES256")) || has_member(header, "crit")) {
        ret = SO_REASON_UNSUPPORTED_ALGORITHM;
        goto done;
    }
    if (!string_is(header, "typ", typ)) {
        ret = SO_REASON_MANIFEST_MALFORMED;
        goto done;
    }
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(header, "kid");
    so_trusted_key_t *key = NULL;
    for (size_t i = 0; cJSON_IsString(kid) && i < key_count; i++) {
        if (strcmp(keys[i].kid, kid->valuestring) == 0) {
            key = (so_trusted_key_t *)&keys[i];
        }
    }
    if (!key) {
        ret = SO_REASON_UNKNOWN_KEY;
        goto done;
    }
    ret = decode_alloc(parts[1], &body, &body_len, &body_canonical);
    if (ret != SO_OK) {
        goto done;
    }
    ret = decode_alloc(parts[2], &sig, &sig_len, &sig_canonical);
    if (ret != SO_OK) {
        goto done;
    }
    /* step 7: key type, the reference library's own checks, then the signature */
    ret = SO_REASON_BAD_SIGNATURE;
    if (parts[0].n > JWS_HEADER_SEGMENT_MAX || parts[2].n > JWS_SIGNATURE_SEGMENT_MAX ||
        parts[1].n > JWS_PAYLOAD_SEGMENT_MAX || !header_canonical || !body_canonical ||
        !sig_canonical || !registered_header(header, false)) {
        goto done;
    }
    span_t signing_input = {parts[0].p, parts[0].n + 1 + parts[1].n};
    ret = verify_signature(key, ps256, signing_input, sig, sig_len);
    if (ret != SO_OK) {
        goto done;
    }
    if (info) {
        memcpy(info->kid, key->kid, sizeof info->kid);
        strcpy(info->alg, ps256 ? "PS256" : "ES256");
    }
    *payload = body;
    *payload_len = body_len;
    body = NULL;
done:
    cJSON_Delete(header);
    free(body);
    free(sig);
    return ret;
}

/* ---- JWE ------------------------------------------------------------------------------ */

static int jwe_decrypt(const so_keyring_t *ring, span_t *parts, const cJSON *header,
                       bool header_canonical, uint8_t **plain, size_t *plain_len)
{
    uint8_t iv[12], tag[16], ek[512], cek[64];
    size_t iv_len = 0, tag_len = 0, ek_len = 0, cek_len = 0;
    bool iv_c = true, tag_c = true, ek_c = true, ct_c = true;
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    int ret;

    /* 6. IV and tag sizes */
    if (!so_b64url_decode(parts[2].p, parts[2].n, iv, sizeof iv, &iv_len, &iv_c)) {
        /* a decodable IV of the wrong size is malformed as well */
        return SO_REASON_MANIFEST_MALFORMED;
    }
    if (iv_len != 12) {
        return SO_REASON_MANIFEST_MALFORMED;
    }
    if (!so_b64url_decode(parts[4].p, parts[4].n, tag, sizeof tag, &tag_len, &tag_c) ||
        tag_len != 16) {
        return SO_REASON_MANIFEST_MALFORMED;
    }
    /* 7. encrypted key: as long as our modulus */
    mbedtls_rsa_context *rsa = mbedtls_pk_rsa(*(mbedtls_pk_context *)&ring->manifest_key);
    size_t modulus = mbedtls_rsa_get_len(rsa);
    if (parts[1].n % 4 == 1) {
        return SO_REASON_MANIFEST_MALFORMED;
    }
    if (so_b64url_decoded_len(parts[1].n) != modulus || modulus > sizeof ek) {
        return SO_REASON_MANIFEST_DECRYPT_FAILED;
    }
    so_b64url_decode(parts[1].p, parts[1].n, ek, sizeof ek, &ek_len, &ek_c);
    /* 8. ciphertext is base64url */
    ret = decode_alloc(parts[3], &ct, &ct_len, &ct_c);
    if (ret != SO_OK) {
        return ret;
    }
    /* 9. decrypt */
    ret = SO_REASON_MANIFEST_DECRYPT_FAILED;
    if (parts[0].n > JWE_HEADER_SEGMENT_MAX || !header_canonical || !iv_c || !tag_c || !ek_c ||
        !ct_c || !registered_header(header, true)) {
        goto done;
    }
    if (so_rsa_oaep_decrypt(rsa, ring->rng, ring->rng_ctx, ek, cek, sizeof cek, &cek_len) != 0 ||
        cek_len != 32) {
        goto done;
    }
    *plain = malloc(ct_len + 1);
    if (!*plain) {
        ret = SO_ERR_NO_MEM;
        goto done;
    }
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    int gret = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, cek, 256);
    if (gret == 0) {
        gret = mbedtls_gcm_auth_decrypt(&gcm, ct_len, iv, 12, (const uint8_t *)parts[0].p,
                                        parts[0].n, tag, 16, ct, *plain);
    }
    mbedtls_gcm_free(&gcm);
    if (gret != 0) {
        free(*plain);
        *plain = NULL;
        goto done;
    }
    *plain_len = ct_len;
    ret = SO_OK;
done:
    so_wipe(cek, sizeof cek);
    free(ct);
    return ret;
}

int so_manifest_open(const so_keyring_t *ring, const uint8_t *token, size_t len, so_claims_t *out,
                     so_manifest_info_t *info)
{
    if (!ring || !token || !out) {
        return SO_ERR_INVALID_ARG;
    }
    if (!ring->has_manifest_key || ring->signing_count == 0) {
        return SO_ERR_KEY;
    }
    if (len > SO_MAX_MANIFEST_SIZE) {
        return SO_REASON_MANIFEST_TOO_LARGE;
    }
    span_t parts[5];
    if (!all_ascii(token, len) || !split_compact((const char *)token, len, parts, 5)) {
        return SO_REASON_MANIFEST_MALFORMED;
    }
    cJSON *header = NULL;
    uint8_t *signed_token = NULL, *payload = NULL;
    size_t signed_len = 0, payload_len = 0;
    bool header_canonical = true;
    int ret = decode_header(parts[0], &header, &header_canonical);
    if (ret != SO_OK) {
        goto done;
    }
    if (!string_is(header, "alg", "RSA-OAEP-256") || !string_is(header, "enc", "A256GCM") ||
        has_member(header, "zip") || has_member(header, "crit")) {
        ret = SO_REASON_UNSUPPORTED_ALGORITHM;
        goto done;
    }
    if (!string_is(header, "cty", "JWT")) {
        ret = SO_REASON_MANIFEST_MALFORMED;
        goto done;
    }
    ret = jwe_decrypt(ring, parts, header, header_canonical, &signed_token, &signed_len);
    if (ret != SO_OK) {
        goto done;
    }
    ret = so_jws_open(ring->signing, ring->signing_count, (const char *)signed_token, signed_len,
                      "fota-manifest+jwt", &payload, &payload_len, info);
    if (ret != SO_OK) {
        goto done;
    }
    ret = so_claims_parse(payload, payload_len, out);
done:
    cJSON_Delete(header);
    if (signed_token) {
        so_wipe(signed_token, signed_len);
    }
    free(signed_token);
    free(payload);
    return ret;
}
