/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The device's decision (docs/formats.md §6), also on an HTTP 304 for the manifest it judged
 * last, and the freshness statement check (§7).
 */
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

/* Rule 6 (and rule 3's exception): the device knows the time and it is at or past `exp`. */
static bool expired(bool has_exp, uint64_t exp, const so_device_facts_t *facts)
{
    return facts->has_clock && has_exp && facts->now >= exp;
}

/* Rule 3: the installed release past its exp means updates are being withheld. */
static int installed_release(bool has_exp, uint64_t exp, const so_device_facts_t *facts)
{
    return expired(has_exp, exp, facts) ? SO_REASON_EXPIRED : SO_REASON_ALREADY_INSTALLED;
}

int so_decide(const so_claims_t *claims, const so_device_facts_t *facts)
{
    if (!claims || !facts || !facts->device_type) {
        return SO_ERR_INVALID_ARG;
    }
    if (strcmp(claims->device_type, facts->device_type) != 0) {
        return SO_REASON_WRONG_DEVICE_TYPE;
    }
    if (claims->chip_id != facts->chip_id) {
        return SO_REASON_WRONG_CHIP;
    }
    if ((int64_t)claims->seq == facts->installed_seq) {
        return installed_release(claims->has_exp, claims->exp, facts);
    }
    if ((int64_t)claims->seq < facts->installed_seq) {
        return SO_REASON_ROLLBACK;
    }
    if ((int64_t)claims->secure_version < facts->secure_version) {
        return SO_REASON_SECURE_VERSION_TOO_LOW;
    }
    if (expired(claims->has_exp, claims->exp, facts)) {
        return SO_REASON_EXPIRED;
    }
    uint32_t slot = facts->slot_size ? facts->slot_size : SO_MAX_IMAGE_SIZE;
    if (claims->image_size > slot) {
        return SO_REASON_IMAGE_TOO_LARGE;
    }
    return SO_OK;
}

int so_judged_init(so_judged_t *out, const uint8_t *manifest, size_t len, const so_claims_t *claims)
{
    if (!out || !manifest || !claims) {
        return SO_ERR_INVALID_ARG;
    }
    so_sha256_hex(manifest, len, out->sha256_hex);
    out->has_exp = claims->has_exp;
    out->exp = claims->has_exp ? claims->exp : 0;
    return SO_OK;
}

int so_decide_unchanged(const so_judged_t *judged, const so_device_facts_t *facts)
{
    if (!judged || !facts) {
        return SO_ERR_INVALID_ARG;
    }
    return installed_release(judged->has_exp, judged->exp, facts);
}

static bool is_hex_lower(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* The statement's payload (§7 step 1); fills nonce, digest and device type. */
static int check_payload(const uint8_t *payload, size_t len, char nonce[65], char digest[65],
                         char device_type[SO_MAX_NAME_LENGTH + 1])
{
    bool no_mem = false;
    cJSON *root = so_json_parse(payload, len, &no_mem);
    if (!root) {
        return no_mem ? SO_ERR_NO_MEM : SO_REASON_FRESHNESS_INVALID;
    }
    int ret = SO_REASON_FRESHNESS_INVALID;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "device_type");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(root, "manifest_sha256");
    const cJSON *nc = cJSON_GetObjectItemCaseSensitive(root, "nonce");
    uint64_t seq, iat;
    /* seq (informational) and iat are integers as in the claims (§5): 7.0 is 7 */
    if (!cJSON_IsString(dt) || !so_is_name(dt->valuestring) ||
        !so_json_get_int(root, "seq", 0, SO_MAX_SEQ, &seq) ||
        !so_json_get_int(root, "iat", 0, SO_MAX_JSON_INT, &iat)) {
        goto done;
    }
    if (!cJSON_IsString(hash) || !so_is_hex64(hash->valuestring) || !cJSON_IsString(nc) ||
        !is_hex_lower(nc->valuestring, 32, 64)) {
        goto done;
    }
    strcpy(nonce, nc->valuestring);
    strcpy(digest, hash->valuestring);
    strcpy(device_type, dt->valuestring);
    ret = SO_OK;
done:
    cJSON_Delete(root);
    return ret;
}

int so_freshness_check_digest(const so_keyring_t *ring, const uint8_t *statement,
                              size_t statement_len, const char *manifest_sha256,
                              const char *nonce, const char *device_type)
{
    if (!ring || !manifest_sha256 || !nonce || !device_type) {
        return SO_ERR_INVALID_ARG;
    }
    if (!statement || statement_len > SO_MAX_STATEMENT_SIZE) {
        return SO_REASON_FRESHNESS_INVALID;
    }
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    int ret = so_jws_open(ring->freshness, ring->freshness_count, (const char *)statement,
                          statement_len, "fota-freshness+jwt", SO_JWS_MEMBERS_BASIC, &payload,
                          &payload_len, NULL);
    if (ret < 0) {
        return ret;
    }
    if (ret != SO_OK) {
        return SO_REASON_FRESHNESS_INVALID;
    }
    char their_nonce[65], digest[65], their_type[SO_MAX_NAME_LENGTH + 1];
    ret = check_payload(payload, payload_len, their_nonce, digest, their_type);
    free(payload);
    if (ret != SO_OK) {
        return ret;
    }
    if (strcmp(their_nonce, nonce) != 0 || strcmp(their_type, device_type) != 0) {
        return SO_REASON_FRESHNESS_INVALID;
    }
    if (strcmp(digest, manifest_sha256) != 0) {
        return SO_REASON_STALE_MANIFEST;
    }
    return SO_OK;
}

int so_freshness_check(const so_keyring_t *ring, const uint8_t *statement, size_t statement_len,
                       const uint8_t *manifest, size_t manifest_len, const char *nonce,
                       const char *device_type)
{
    if (!manifest) {
        return SO_ERR_INVALID_ARG;
    }
    char digest[65];
    so_sha256_hex(manifest, manifest_len, digest);
    return so_freshness_check_digest(ring, statement, statement_len, digest, nonce, device_type);
}

bool so_name_ok(const char *name)
{
    return name && so_is_name(name);
}
