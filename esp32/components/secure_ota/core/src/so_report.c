/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Device reports (docs/formats.md §11): the device's P-256 report key (generated, stored as a
 * small blob, its SPKI `pub` and key id as §10 computes them) and the signed report, a JWS
 * compact token (ES256, raw r || s) whose payload has the bytes the Python reference writes:
 * members sorted by name, no whitespace, strings escaped as json.dumps escapes printable ASCII.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

#define SPKI_LEN 91u /* the DER SubjectPublicKeyInfo of a P-256 key, point uncompressed */
#define PAYLOAD_MAX 1024u /* the longest payload is 928 bytes (so_report_check's bounds) */

static const char MAGIC[4] = {'S', 'O', 'R', 'K'};
#define BLOB_FORMAT 1u

/* The canonical SPKI prefix of a P-256 key, up to the 65-byte uncompressed point (RFC 5480). */
static const uint8_t P256_SPKI_PREFIX[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                             0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                             0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};

static const char *const EVENT_NAMES[SO_EVENT_COUNT] = {
    [SO_EVENT_CHECKING] = "checking",       [SO_EVENT_DOWNLOADING] = "downloading",
    [SO_EVENT_INSTALLED] = "installed",     [SO_EVENT_CONFIRMED] = "confirmed",
    [SO_EVENT_ROLLED_BACK] = "rolled_back", [SO_EVENT_REJECTED] = "rejected",
    [SO_EVENT_FAILED] = "failed",
};

struct so_report_key {
    mbedtls_ecp_keypair pair;
    char kid[65];
    char pub[SO_REPORT_PUB_LEN + 1];
};

const char *so_event_name(int event)
{
    return event >= 0 && event < SO_EVENT_COUNT ? EVENT_NAMES[event] : NULL;
}

/* ---- the report's members ----------------------------------------------------------------- */

/* Printable ASCII (0x20..0x7e) of at most `limit` characters (a NULL string is empty). */
static bool printable(const char *s, size_t limit)
{
    if (!s) {
        return true;
    }
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= limit || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e) {
            return false;
        }
    }
    return true;
}

int so_report_check(const so_report_t *r, const char **field)
{
    const char *bad = NULL;
    if (!r) {
        return SO_ERR_INVALID_ARG;
    }
    if (!r->device_id || !so_is_name(r->device_id)) {
        bad = "device_id";
    } else if (!r->device_type || !so_is_name(r->device_type)) {
        bad = "device_type";
    } else if (!so_event_name((int)r->event)) {
        bad = "event";
    } else if (r->reason < 0 || r->reason >= SO_REASON_COUNT ||
               (r->event == SO_EVENT_REJECTED && r->reason == 0)) {
        bad = "reason";
    } else if (!printable(r->detail, SO_MAX_REPORT_DETAIL)) {
        bad = "detail";
    } else if (r->seq > SO_MAX_SEQ) {
        bad = "seq";
    } else if (r->secure_version > SO_MAX_SECURE_VERSION) {
        bad = "secure_version";
    } else if (!r->version || !printable(r->version, SO_MAX_REPORT_VERSION)) {
        bad = "version";
    } else if (r->release > SO_MAX_SEQ) {
        bad = "release";
    } else if (r->counter < 1 || r->counter > SO_MAX_REPORT_COUNTER) {
        bad = "counter";
    }
    if (field) {
        *field = bad;
    }
    return bad ? SO_ERR_FIELD : SO_OK;
}

/* A bounded string builder: `ok` turns false once something did not fit. */
typedef struct {
    char *p;
    size_t cap;
    size_t n;
    bool ok;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (!o->ok || n >= o->cap - o->n) {
        o->ok = false;
        return;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

static void put_str(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

/* A JSON string of printable ASCII, escaped as Python's json.dumps does ('"' and '\\'). */
static void put_json_string(out_t *o, const char *s)
{
    put(o, "\"", 1);
    for (const char *c = s ? s : ""; *c; c++) {
        if (*c == '"' || *c == '\\') {
            put(o, "\\", 1);
        }
        put(o, c, 1);
    }
    put(o, "\"", 1);
}

static void put_u64(out_t *o, uint64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%" PRIu64, v);
    put(o, digits, (size_t)n);
}

int so_report_payload(const so_report_key_t *key, const so_report_t *r, char *out, size_t cap,
                      size_t *len)
{
    if (!key || !r || !out || cap == 0) {
        return SO_ERR_INVALID_ARG;
    }
    out[0] = '\0';
    int ret = so_report_check(r, NULL);
    if (ret != SO_OK) {
        return ret;
    }
    out_t o = {.p = out, .cap = cap, .n = 0, .ok = true};
    put_str(&o, "{\"counter\":");
    put_u64(&o, r->counter);
    put_str(&o, ",\"detail\":");
    put_json_string(&o, r->detail);
    put_str(&o, ",\"device_id\":");
    put_json_string(&o, r->device_id);
    put_str(&o, ",\"device_type\":");
    put_json_string(&o, r->device_type);
    put_str(&o, ",\"event\":");
    put_json_string(&o, so_event_name((int)r->event));
    put_str(&o, ",\"pub\":");
    put_json_string(&o, key->pub);
    put_str(&o, ",\"reason\":");
    if (r->reason == 0) {
        put_str(&o, "null");
    } else {
        put_json_string(&o, so_reason_name(r->reason));
    }
    put_str(&o, ",\"release\":");
    put_u64(&o, r->release);
    put_str(&o, ",\"secure_version\":");
    put_u64(&o, r->secure_version);
    put_str(&o, ",\"seq\":");
    put_u64(&o, r->seq);
    put_str(&o, ",\"version\":");
    put_json_string(&o, r->version);
    put_str(&o, "}");
    if (!o.ok) {
        out[0] = '\0';
        return SO_ERR_BUFFER;
    }
    if (len) {
        *len = o.n;
    }
    return SO_OK;
}

/* ---- the key -------------------------------------------------------------------------------- */

static so_report_key_t *key_new(void)
{
    so_report_key_t *key = calloc(1, sizeof *key);
    if (key) {
        mbedtls_ecp_keypair_init(&key->pair);
    }
    return key;
}

void so_report_key_free(so_report_key_t *key)
{
    if (key) {
        mbedtls_ecp_keypair_free(&key->pair); /* zeroises the scalar */
        so_wipe(key, sizeof *key);
        free(key);
    }
}

/* The key id and `pub` from the key pair's public point. */
static int key_finish(so_report_key_t *key)
{
    uint8_t spki[SPKI_LEN];
    size_t point_len = 0;
    memcpy(spki, P256_SPKI_PREFIX, sizeof P256_SPKI_PREFIX);
    if (mbedtls_ecp_point_write_binary(so_ec_group(&key->pair), so_ec_point(&key->pair),
                                       MBEDTLS_ECP_PF_UNCOMPRESSED, &point_len,
                                       spki + sizeof P256_SPKI_PREFIX,
                                       SPKI_LEN - sizeof P256_SPKI_PREFIX) != 0 ||
        point_len != SPKI_LEN - sizeof P256_SPKI_PREFIX) {
        return SO_ERR_CRYPTO;
    }
    so_sha256_hex(spki, sizeof spki, key->kid);
    if (so_b64url_encode(spki, sizeof spki, key->pub, sizeof key->pub) != SO_REPORT_PUB_LEN) {
        return SO_ERR_CRYPTO;
    }
    return SO_OK;
}

int so_report_key_generate(so_rng_cb rng, void *rng_ctx, so_report_key_t **out)
{
    if (!rng || !out) {
        return SO_ERR_INVALID_ARG;
    }
    *out = NULL;
    so_report_key_t *key = key_new();
    if (!key) {
        return SO_ERR_NO_MEM;
    }
    int ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, &key->pair, rng, rng_ctx) == 0
                  ? key_finish(key)
                  : SO_ERR_CRYPTO;
    if (ret != SO_OK) {
        so_report_key_free(key);
        return ret;
    }
    *out = key;
    return SO_OK;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (size_t i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

int so_report_key_export(const so_report_key_t *key, uint8_t *out, size_t cap, size_t *len)
{
    if (!key || !out) {
        return SO_ERR_INVALID_ARG;
    }
    if (cap < SO_REPORT_KEY_BLOB_SIZE) {
        return SO_ERR_BUFFER;
    }
    memset(out, 0, SO_REPORT_KEY_BLOB_SIZE);
    memcpy(out, MAGIC, sizeof MAGIC);
    out[4] = BLOB_FORMAT;
    if (mbedtls_mpi_write_binary(so_ec_d((mbedtls_ecp_keypair *)&key->pair), out + 8, 32) != 0) {
        so_wipe(out, SO_REPORT_KEY_BLOB_SIZE);
        return SO_ERR_CRYPTO;
    }
    put_le32(out + 40, so_crc32(out, 40));
    if (len) {
        *len = SO_REPORT_KEY_BLOB_SIZE;
    }
    return SO_OK;
}

int so_report_key_load(const uint8_t *blob, size_t len, so_rng_cb rng, void *rng_ctx,
                       so_report_key_t **out)
{
    if (!blob || !rng || !out) {
        return SO_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (len != SO_REPORT_KEY_BLOB_SIZE || memcmp(blob, MAGIC, sizeof MAGIC) != 0 ||
        blob[4] != BLOB_FORMAT || blob[5] || blob[6] || blob[7]) {
        return SO_ERR_KEY;
    }
    uint32_t crc = (uint32_t)blob[40] | (uint32_t)blob[41] << 8 | (uint32_t)blob[42] << 16 |
                   (uint32_t)blob[43] << 24;
    if (crc != so_crc32(blob, 40)) {
        return SO_ERR_KEY;
    }
    so_report_key_t *key = key_new();
    if (!key) {
        return SO_ERR_NO_MEM;
    }
    /* mbedtls_ecp_read_key refuses a scalar outside 1..n-1 (mbedtls_ecp_check_privkey) */
    int ret = SO_ERR_KEY;
    if (mbedtls_ecp_read_key(MBEDTLS_ECP_DP_SECP256R1, &key->pair, blob + 8, 32) == 0) {
        mbedtls_ecp_group *grp = so_ec_group(&key->pair);
        ret = mbedtls_ecp_mul(grp, so_ec_point(&key->pair), so_ec_d(&key->pair), &grp->G, rng,
                              rng_ctx) == 0
                  ? key_finish(key)
                  : SO_ERR_CRYPTO;
    }
    if (ret != SO_OK) {
        so_report_key_free(key);
        return ret;
    }
    *out = key;
    return SO_OK;
}

void so_report_key_kid(const so_report_key_t *key, char kid[65])
{
    memcpy(kid, key->kid, 65);
}

void so_report_key_pub(const so_report_key_t *key, char pub[SO_REPORT_PUB_LEN + 1])
{
    memcpy(pub, key->pub, SO_REPORT_PUB_LEN + 1);
}

/* ---- the signed report ---------------------------------------------------------------------- */

/* ES256 over `input`: raw r || s (64 bytes). */
static int es256(const so_report_key_t *key, so_rng_cb rng, void *rng_ctx, const char *input,
                 size_t input_len, uint8_t sig[64])
{
    uint8_t hash[32];
    if (so_sha256((const uint8_t *)input, input_len, hash) != 0) {
        return SO_ERR_CRYPTO;
    }
    mbedtls_ecp_keypair *pair = (mbedtls_ecp_keypair *)&key->pair;
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    int ret = so_ecdsa_sign_sha256(so_ec_group(pair), &r, &s, so_ec_d(pair), hash, rng, rng_ctx);
    if (ret == 0) {
        ret = mbedtls_mpi_write_binary(&r, sig, 32);
    }
    if (ret == 0) {
        ret = mbedtls_mpi_write_binary(&s, sig + 32, 32);
    }
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return ret == 0 ? SO_OK : SO_ERR_CRYPTO;
}

int so_report_sign(const so_report_key_t *key, so_rng_cb rng, void *rng_ctx,
                   const so_report_t *report, char *out, size_t cap, size_t *len)
{
    if (!key || !rng || !report || !out || cap == 0) {
        return SO_ERR_INVALID_ARG;
    }
    out[0] = '\0';
    int ret = so_report_check(report, NULL);
    if (ret != SO_OK) {
        return ret;
    }
    char *payload = malloc(PAYLOAD_MAX);
    if (!payload) {
        return SO_ERR_NO_MEM;
    }
    size_t payload_len = 0;
    ret = so_report_payload(key, report, payload, PAYLOAD_MAX, &payload_len);
    char header[128];
    int header_len = snprintf(header, sizeof header,
                              "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"fota-report+jwt\"}",
                              key->kid);
    size_t n = 0, m = 0;
    if (ret == SO_OK) {
        /* part 1 "." part 2 */
        n = so_b64url_encode((const uint8_t *)header, (size_t)header_len, out, cap);
        if (n == 0 || n + 1 >= cap) {
            ret = SO_ERR_BUFFER;
        }
    }
    if (ret == SO_OK) {
        out[n++] = '.';
        m = so_b64url_encode((const uint8_t *)payload, payload_len, out + n, cap - n);
        ret = m ? SO_OK : SO_ERR_BUFFER;
        n += m;
    }
    uint8_t sig[64];
    if (ret == SO_OK) {
        ret = es256(key, rng, rng_ctx, out, n, sig);
    }
    if (ret == SO_OK) {
        if (n + 1 >= cap) {
            ret = SO_ERR_BUFFER;
        } else {
            out[n++] = '.';
            m = so_b64url_encode(sig, sizeof sig, out + n, cap - n);
            ret = m ? SO_OK : SO_ERR_BUFFER;
            n += m;
        }
    }
    free(payload);
    if (ret != SO_OK) {
        out[0] = '\0';
        return ret;
    }
    if (len) {
        *len = n;
    }
    return SO_OK;
}
