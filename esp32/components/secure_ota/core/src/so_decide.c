/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The device's decision (docs/formats.md §6), also on an HTTP 304 for the manifest it judged
 * last and on an HTTP 404, and the freshness statements with their answers (§7).
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
    out->seq = claims->seq;
    return SO_OK;
}

int so_decide_unchanged(const so_judged_t *judged, const so_device_facts_t *facts)
{
    if (!judged || !facts) {
        return SO_ERR_INVALID_ARG;
    }
    if ((int64_t)judged->seq < facts->installed_seq) {
        return SO_REASON_ROLLBACK;
    }
    if ((int64_t)judged->seq > facts->installed_seq) {
        return SO_ERR_STATE;
    }
    return installed_release(judged->has_exp, judged->exp, facts);
}

int so_decide_none(const so_judged_t *installed, const so_device_facts_t *facts)
{
    if (!facts) {
        return SO_ERR_INVALID_ARG;
    }
    if (installed && (int64_t)installed->seq == facts->installed_seq) {
        return installed_release(installed->has_exp, installed->exp, facts);
    }
    return SO_REASON_ALREADY_INSTALLED;
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

static bool copy_name(const cJSON *v, char out[SO_MAX_NAME_LENGTH + 1])
{
    if (!cJSON_IsString(v) || !so_is_name(v->valuestring)) {
        return false;
    }
    strcpy(out, v->valuestring);
    return true;
}

/* The members an answer allows (§7): no other member is accepted. */
static bool member_allowed(const char *name, so_answer_t answer)
{
    static const char *const common[] = {"answer", "device_type", "nonce", "iat", "device_id"};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        if (!strcmp(name, common[i])) {
            return true;
        }
    }
    return answer == SO_ANSWER_NEWEST && (!strcmp(name, "seq") || !strcmp(name, "manifest_sha256"));
}

int so_statement_parse(const uint8_t *payload, size_t len, so_statement_t *out)
{
    if (!payload || !out) {
        return SO_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    bool no_mem = false;
    cJSON *root = so_json_parse(payload, len, &no_mem);
    if (!root) {
        return no_mem ? SO_ERR_NO_MEM : SO_REASON_FRESHNESS_INVALID;
    }
    int ret = SO_REASON_FRESHNESS_INVALID;
    const cJSON *answer = cJSON_GetObjectItemCaseSensitive(root, "answer");
    if (!cJSON_IsObject(root) || !cJSON_IsString(answer)) {
        goto done;
    }
    if (!strcmp(answer->valuestring, "newest")) {
        out->answer = SO_ANSWER_NEWEST;
    } else if (!strcmp(answer->valuestring, "none")) {
        out->answer = SO_ANSWER_NONE;
    } else {
        goto done;
    }
    const cJSON *member;
    cJSON_ArrayForEach(member, root)
    {
        if (!member->string || !member_allowed(member->string, out->answer)) {
            goto done;
        }
    }
    const cJSON *nc = cJSON_GetObjectItemCaseSensitive(root, "nonce");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "device_id");
    /* iat (and seq) are integers as in the claims (§5): 7.0 is 7 */
    if (!copy_name(cJSON_GetObjectItemCaseSensitive(root, "device_type"), out->device_type) ||
        !so_json_get_int(root, "iat", 0, SO_MAX_JSON_INT, &out->iat) || !cJSON_IsString(nc) ||
        !is_hex_lower(nc->valuestring, 32, 64)) {
        goto done;
    }
    strcpy(out->nonce, nc->valuestring);
    if (id) {
        if (!copy_name(id, out->device_id)) {
            goto done;
        }
        out->has_device_id = true;
    }
    if (out->answer == SO_ANSWER_NEWEST) {
        uint64_t seq;
        const cJSON *hash = cJSON_GetObjectItemCaseSensitive(root, "manifest_sha256");
        if (!so_json_get_int(root, "seq", 0, SO_MAX_SEQ, &seq) || !cJSON_IsString(hash) ||
            !so_is_hex64(hash->valuestring)) {
            goto done;
        }
        out->seq = (uint32_t)seq;
        strcpy(out->manifest_sha256, hash->valuestring);
    }
    ret = SO_OK;
done:
    cJSON_Delete(root);
    if (ret != SO_OK) {
        memset(out, 0, sizeof *out);
    }
    return ret;
}

int so_statement_open(const so_keyring_t *ring, const uint8_t *statement, size_t statement_len,
                      so_statement_t *out)
{
    if (!ring || !out) {
        return SO_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
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
    ret = so_statement_parse(payload, payload_len, out);
    free(payload);
    return ret;
}

/* §7 steps 1-3 for this poll: signed, well formed, this nonce and device type, and exactly
 * the device id the poll sent (`device_id` NULL or "": the poll sent none, and the statement
 * must name none; a statement without the id may answer a poll stripped of it).
 * SO_OK with *out, or a result to return. */
static int open_for_poll(const so_keyring_t *ring, const uint8_t *statement, size_t statement_len,
                         const char *nonce, const char *device_type, const char *device_id,
                         so_statement_t *out)
{
    bool has_id = device_id && device_id[0];
    if (!ring || !nonce || !device_type || (has_id && !so_is_name(device_id))) {
        return SO_ERR_INVALID_ARG;
    }
    int ret = so_statement_open(ring, statement, statement_len, out);
    if (ret != SO_OK) {
        return ret;
    }
    if (strcmp(out->nonce, nonce) != 0 || strcmp(out->device_type, device_type) != 0) {
        return SO_REASON_FRESHNESS_INVALID;
    }
    if (out->has_device_id != has_id || (has_id && strcmp(out->device_id, device_id) != 0)) {
        return SO_REASON_FRESHNESS_INVALID; /* for another device, or naming none */
    }
    return SO_OK;
}

int so_freshness_check_digest(const so_keyring_t *ring, const uint8_t *statement,
                              size_t statement_len, const char *manifest_sha256,
                              const char *nonce, const char *device_type, const char *device_id)
{
    if (!manifest_sha256) {
        return SO_ERR_INVALID_ARG;
    }
    so_statement_t st;
    int ret = open_for_poll(ring, statement, statement_len, nonce, device_type, device_id, &st);
    if (ret != SO_OK) {
        return ret;
    }
    if (st.answer != SO_ANSWER_NEWEST || strcmp(st.manifest_sha256, manifest_sha256) != 0) {
        return SO_REASON_STALE_MANIFEST;
    }
    return SO_OK;
}

int so_freshness_check_none(const so_keyring_t *ring, const uint8_t *statement,
                            size_t statement_len, const char *nonce, const char *device_type,
                            const char *device_id)
{
    so_statement_t st;
    int ret = open_for_poll(ring, statement, statement_len, nonce, device_type, device_id, &st);
    if (ret != SO_OK) {
        return ret;
    }
    return st.answer == SO_ANSWER_NONE ? SO_OK : SO_REASON_STALE_MANIFEST;
}

int so_freshness_check(const so_keyring_t *ring, const uint8_t *statement, size_t statement_len,
                       const uint8_t *manifest, size_t manifest_len, const char *nonce,
                       const char *device_type, const char *device_id)
{
    if (!manifest) {
        return SO_ERR_INVALID_ARG;
    }
    char digest[65];
    so_sha256_hex(manifest, manifest_len, digest);
    return so_freshness_check_digest(ring, statement, statement_len, digest, nonce, device_type,
                                     device_id);
}

bool so_name_ok(const char *name)
{
    return name && so_is_name(name);
}
