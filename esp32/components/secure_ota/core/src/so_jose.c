/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The manifest envelope (docs/formats.md §4): outer JWE (RSA-OAEP-256 or, for a device with a
 * P-256 manifest key, ECDH-ES+A256KW; A256GCM), inner JWS
 * (PS256/ES256, key by kid, key set reached through `rot`). Checks run in the order of §4.2
 * and §4.3; the first failure is the reason.
 *
 * Beyond the text of §4, the reference implementation (Python, joserfc 1.x) also refuses at
 * the cryptographic step: a JWE `kid` that is not a string (§4.2 step 10 ->
 * manifest_decrypt_failed), a JWS signature segment longer than 1024 or payload segment longer
 * than 128000 characters (§4.3 step 8 -> bad_signature). We refuse the same inputs at the same
 * step so that both implementations give the same reason for every input (esp32/README.md).
 */
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

#define JWS_SIGNATURE_SEGMENT_MAX 1024u
#define JWS_PAYLOAD_SEGMENT_MAX 128000u

typedef so_span_t span_t;

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
static int decode_alloc(span_t seg, uint8_t **out, size_t *out_len)
{
    size_t cap = so_b64url_decoded_len(seg.n) + 1;
    *out = malloc(cap);
    if (!*out) {
        return SO_ERR_NO_MEM;
    }
    if (!so_b64url_decode(seg.p, seg.n, *out, cap, out_len)) {
        free(*out);
        *out = NULL;
        return SO_REASON_MANIFEST_MALFORMED;
    }
    return SO_OK;
}

/* Decode a JOSE protected header into a strict-JSON object. */
static int decode_header(span_t seg, cJSON **header)
{
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    int ret = decode_alloc(seg, &raw, &raw_len);
    if (ret != SO_OK) {
        return ret;
    }
    bool no_mem = false;
    *header = so_json_parse(raw, raw_len, &no_mem);
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

/* True if every member of `header` is one of the NULL-terminated `names`. */
static bool members_within(const cJSON *header, const char *const *names)
{
    for (const cJSON *m = header->child; m; m = m->next) {
        bool known = false;
        for (const char *const *n = names; *n && !known; n++) {
            known = strcmp(m->string, *n) == 0;
        }
        if (!known) {
            return false;
        }
    }
    return true;
}

/* ---- JWS ------------------------------------------------------------------------------ */

static int verify_signature(const so_trusted_key_t *key, bool ps256, span_t signing_input,
                            const uint8_t *sig, size_t sig_len)
{
    if (!key->usable) {
        return SO_REASON_BAD_SIGNATURE;
    }
    mbedtls_pk_context *pk = (mbedtls_pk_context *)&key->pk;
    uint8_t hash[32];
    so_sha256((const uint8_t *)signing_input.p, signing_input.n, hash);
    if (ps256) {
        if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_RSA) {
            return SO_REASON_BAD_SIGNATURE;
        }
        mbedtls_rsa_context *rsa = mbedtls_pk_rsa(*pk);
        if (sig_len != mbedtls_rsa_get_len(rsa) || so_rsa_pss_sha256_verify(rsa, hash, sig) != 0) {
            return SO_REASON_BAD_SIGNATURE;
        }
        return SO_OK;
    }
    if (so_pk_curve(pk) != MBEDTLS_ECP_DP_SECP256R1 || sig_len != 64) {
        return SO_REASON_BAD_SIGNATURE;
    }
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*pk);
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

void so_jws_free(so_jws_t *jws)
{
    if (jws) {
        cJSON_Delete(jws->header);
        jws->header = NULL;
    }
}

int so_jws_parse(const char *token, size_t len, so_jws_t *jws)
{
    memset(jws, 0, sizeof *jws);
    if (!token || !all_ascii((const uint8_t *)token, len) ||
        !split_compact(token, len, jws->parts, 3) || jws->parts[0].n > SO_MAX_JWS_HEADER) {
        return SO_REASON_MANIFEST_MALFORMED;
    }
    return decode_header(jws->parts[0], &jws->header);
}

int so_jws_verify(const so_jws_t *jws, const so_trusted_key_t *keys, size_t key_count,
                  const char *typ, unsigned members, uint8_t **payload, size_t *payload_len,
                  so_manifest_info_t *info)
{
    static const char *const basic[] = {"alg", "kid", "typ", NULL};
    static const char *const manifest[] = {"alg", "kid", "typ", "rot", NULL};
    const cJSON *header = jws->header;
    uint8_t *body = NULL, *sig = NULL;
    size_t body_len = 0, sig_len = 0;
    int ret;

    *payload = NULL;
    *payload_len = 0;
    /* 3. algorithm */
    bool ps256 = string_is(header, "alg", "PS256");
    if ((!ps256 && !string_is(header, "alg", "ES256")) || has_member(header, "crit")) {
        return SO_REASON_UNSUPPORTED_ALGORITHM;
    }
    /* 4. typ, 5. no other members */
    if (!string_is(header, "typ", typ) ||
        !members_within(header, members == SO_JWS_MEMBERS_MANIFEST ? manifest : basic)) {
        return SO_REASON_MANIFEST_MALFORMED;
    }
    /* 6. kid */
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(header, "kid");
    const so_trusted_key_t *key = NULL;
    for (size_t i = 0; cJSON_IsString(kid) && !key && i < key_count; i++) {
        if (strcmp(keys[i].kid, kid->valuestring) == 0) {
            key = &keys[i];
        }
    }
    if (!key) {
        return SO_REASON_UNKNOWN_KEY;
    }
    /* 7. payload and signature are base64url */
    ret = decode_alloc(jws->parts[1], &body, &body_len);
    if (ret == SO_OK) {
        ret = decode_alloc(jws->parts[2], &sig, &sig_len);
    }
    if (ret != SO_OK) {
        goto done;
    }
    /* 8. the reference library's size limits, key type, then the signature */
    ret = SO_REASON_BAD_SIGNATURE;
    if (jws->parts[2].n > JWS_SIGNATURE_SEGMENT_MAX || jws->parts[1].n > JWS_PAYLOAD_SEGMENT_MAX) {
        goto done;
    }
    span_t signing_input = {jws->parts[0].p, jws->parts[0].n + 1 + jws->parts[1].n};
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
    free(body);
    free(sig);
    return ret;
}

int so_jws_open(const so_trusted_key_t *keys, size_t key_count, const char *token, size_t len,
                const char *typ, unsigned members, uint8_t **payload, size_t *payload_len,
                so_manifest_info_t *info)
{
    so_jws_t jws;
    *payload = NULL;
    *payload_len = 0;
    int ret = so_jws_parse(token, len, &jws);
    if (ret == SO_OK) {
        ret = so_jws_verify(&jws, keys, key_count, typ, members, payload, payload_len, info);
    }
    so_jws_free(&jws);
    return ret;
}

int so_signed_manifest_open(const so_keyring_t *ring, const char *token, size_t len,
                            so_claims_t *out, so_manifest_info_t *info, so_keyset_t **reached)
{
    so_jws_t jws;
    so_keyset_t *walked = NULL;
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    if (reached) {
        *reached = NULL;
    }
    /* 1, 2: structure and header; in a manifest, `rot` is an array of 1 to 8 strings */
    int ret = so_jws_parse(token, len, &jws);
    if (ret != SO_OK) {
        goto done;
    }
    const cJSON *rot = cJSON_GetObjectItemCaseSensitive(jws.header, "rot");
    if (rot && !so_rotation_shape_ok(rot)) {
        ret = SO_REASON_MANIFEST_MALFORMED;
        goto done;
    }
    /* §4.4: the key set for step 6 */
    if (rot) {
        ret = so_rotation_walk(&ring->signing, rot, &walked);
        if (ret != SO_OK) {
            goto done;
        }
    }
    const so_keyset_t *set = walked ? walked : &ring->signing;
    /* 3..8 */
    ret = so_jws_verify(&jws, set->keys, set->count, "fota-manifest+jwt", SO_JWS_MEMBERS_MANIFEST,
                        &payload, &payload_len, info);
    if (ret != SO_OK) {
        goto done;
    }
    /* 9. claims */
    ret = so_claims_parse(payload, payload_len, out);
    if (ret != SO_OK) {
        goto done;
    }
    if (info) {
        info->keyset_version = set->version;
        info->keyset_count = set->count;
        for (size_t i = 0; i < set->count; i++) {
            memcpy(info->keyset_kids[i], set->keys[i].kid, 65);
        }
    }
    if (reached) {
        *reached = walked;
        walked = NULL;
    }
done:
    so_jws_free(&jws);
    so_keyset_free(walked);
    free(payload);
    return ret;
}

/* ---- JWE ------------------------------------------------------------------------------ */

#define JWE_ALG_RSA "RSA-OAEP-256"
#define JWE_ALG_EC "ECDH-ES+A256KW"
#define WRAPPED_CEK 40u

static bool manifest_key_is_ec(const so_keyring_t *ring)
{
    return so_pk_curve(&ring->manifest_key) == MBEDTLS_ECP_DP_SECP256R1;
}

/* One coordinate of an epk: a string of canonical base64url decoding to exactly 32 bytes. */
static bool epk_coordinate(const cJSON *epk, const char *name, uint8_t out[32])
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(epk, name);
    size_t n = 0;
    return cJSON_IsString(item) &&
           so_b64url_decode(item->valuestring, strlen(item->valuestring), out, 32, &n) && n == 32;
}

/* §4.2 step 8 for ECDH-ES+A256KW: `epk` is exactly {kty "EC", crv "P-256", x, y}. */
static bool epk_read(const cJSON *header, uint8_t point[64])
{
    static const char *const members[] = {"kty", "crv", "x", "y", NULL};
    const cJSON *epk = cJSON_GetObjectItemCaseSensitive(header, "epk");
    return cJSON_IsObject(epk) && members_within(epk, members) &&
           cJSON_GetArraySize(epk) == 4 && string_is(epk, "kty", "EC") &&
           string_is(epk, "crv", "P-256") && epk_coordinate(epk, "x", point) &&
           epk_coordinate(epk, "y", point + 32);
}

/* §4.2 step 10, key management: the 32-byte CEK from the encrypted key (and epk). */
static int unwrap_cek(const so_keyring_t *ring, const uint8_t *ek, const uint8_t epk[64],
                      uint8_t cek[64], size_t *cek_len)
{
    mbedtls_pk_context *pk = (mbedtls_pk_context *)&ring->manifest_key;
    if (!manifest_key_is_ec(ring)) {
        return so_rsa_oaep_decrypt(mbedtls_pk_rsa(*pk), ring->rng, ring->rng_ctx, ek, cek, 64,
                                   cek_len);
    }
    uint8_t z[32], kek[32];
    int ret = so_p256_shared_x(mbedtls_pk_ec(*pk), epk, ring->rng, ring->rng_ctx, z);
    if (ret == 0) {
        so_concat_kdf_a256kw(z, JWE_ALG_EC, kek);
        ret = so_aes_kw_unwrap(kek, ek, WRAPPED_CEK, cek);
        *cek_len = WRAPPED_CEK - 8;
    }
    so_wipe(z, sizeof z);
    so_wipe(kek, sizeof kek);
    return ret;
}

/* §4.2 steps 7-10 (the header already passed steps 2-6). */
static int jwe_decrypt(const so_keyring_t *ring, span_t *parts, const cJSON *header,
                       uint8_t **plain, size_t *plain_len)
{
    uint8_t iv[12], tag[16], cek[64], epk[64];
    size_t iv_len = 0, tag_len = 0, ek_len = 0, cek_len = 0;
    uint8_t *ek = NULL, *ct = NULL;
    size_t ct_len = 0;
    int ret;

    /* 7. IV and tag sizes (a decodable segment of the wrong size is malformed as well) */
    if (!so_b64url_decode(parts[2].p, parts[2].n, iv, sizeof iv, &iv_len) || iv_len != 12 ||
        !so_b64url_decode(parts[4].p, parts[4].n, tag, sizeof tag, &tag_len) || tag_len != 16) {
        return SO_REASON_MANIFEST_MALFORMED;
    }
    /* 8. encrypted key: base64url, as long as our modulus (RSA) or 40 bytes and a valid epk */
    bool ec = manifest_key_is_ec(ring);
    size_t wanted = ec ? WRAPPED_CEK
                       : mbedtls_rsa_get_len(mbedtls_pk_rsa(*(mbedtls_pk_context *)&ring->manifest_key));
    ret = decode_alloc(parts[1], &ek, &ek_len);
    if (ret != SO_OK) {
        return ret;
    }
    if (ek_len != wanted || (ec && !epk_read(header, epk))) {
        ret = SO_REASON_MANIFEST_DECRYPT_FAILED;
        goto done;
    }
    /* 9. ciphertext is base64url */
    ret = decode_alloc(parts[3], &ct, &ct_len);
    if (ret != SO_OK) {
        goto done;
    }
    /* 10. decrypt (the reference library also wants a string `kid`) */
    ret = SO_REASON_MANIFEST_DECRYPT_FAILED;
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(header, "kid");
    if (kid && !cJSON_IsString(kid)) {
        goto done;
    }
    if (unwrap_cek(ring, ek, epk, cek, &cek_len) != 0 || cek_len != 32) {
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
    free(ek);
    free(ct);
    return ret;
}

int so_manifest_open(const so_keyring_t *ring, const uint8_t *token, size_t len, so_claims_t *out,
                     so_manifest_info_t *info, so_keyset_t **reached)
{
    static const char *const jwe_members[] = {"alg", "enc", "cty", "kid", NULL};
    static const char *const jwe_members_ec[] = {"alg", "enc", "cty", "kid", "epk", NULL};
    if (reached) {
        *reached = NULL;
    }
    if (!ring || !token || !out) {
        return SO_ERR_INVALID_ARG;
    }
    if (!ring->has_manifest_key || ring->signing.count == 0) {
        return SO_ERR_KEY;
    }
    if (len > SO_MAX_MANIFEST_SIZE) {
        return SO_REASON_MANIFEST_TOO_LARGE;
    }
    /* 1. five base64url parts; 2. a header of at most 1024 characters */
    span_t parts[5];
    if (!all_ascii(token, len) || !split_compact((const char *)token, len, parts, 5) ||
        parts[0].n > SO_MAX_JWE_HEADER) {
        return SO_REASON_MANIFEST_MALFORMED;
    }
    cJSON *header = NULL;
    uint8_t *signed_token = NULL;
    size_t signed_len = 0;
    int ret = decode_header(parts[0], &header);
    if (ret != SO_OK) {
        goto done;
    }
    /* 3, 4. algorithms: the one of the device's manifest key */
    bool ec = manifest_key_is_ec(ring);
    if (!string_is(header, "alg", ec ? JWE_ALG_EC : JWE_ALG_RSA) ||
        !string_is(header, "enc", "A256GCM") ||
        has_member(header, "zip") || has_member(header, "crit")) {
        ret = SO_REASON_UNSUPPORTED_ALGORITHM;
        goto done;
    }
    /* 5. cty, 6. no other members */
    if (!string_is(header, "cty", "JWT") ||
        !members_within(header, ec ? jwe_members_ec : jwe_members)) {
        ret = SO_REASON_MANIFEST_MALFORMED;
        goto done;
    }
    ret = jwe_decrypt(ring, parts, header, &signed_token, &signed_len);
    if (ret != SO_OK) {
        goto done;
    }
    ret = so_signed_manifest_open(ring, (const char *)signed_token, signed_len, out, info,
                                  reached);
done:
    cJSON_Delete(header);
    if (signed_token) {
        so_wipe(signed_token, signed_len);
    }
    free(signed_token);
    return ret;
}
