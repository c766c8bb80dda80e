/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Key rotation (docs/formats.md §4.4): the statements of a manifest's `rot`, walked from the
 * device's own key set exactly as the reference does (secure_fota.crypto.key_rotation.advance):
 *
 *   for each statement, in order:
 *     longer than 8192 characters, or its payload (part 2, read before verifying) unreadable
 *                                                                   -> stop;
 *     payload version <= current version                            -> skip it;
 *     not a valid JWS under the current set, or version != current + 1 -> stop;
 *     else the current set becomes the statement's keys.
 *
 * Walking never rejects a manifest: its kid must then be in the set reached. At most two sets
 * (the current one and the candidate) are alive at any time, each of at most 4 keys.
 */
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

/* a base64url key of SO_MAX_ROTATION_KEY characters decodes to at most this many bytes */
#define MAX_KEY_BYTES ((SO_MAX_ROTATION_KEY / 4u) * 3u)

bool so_rotation_shape_ok(const cJSON *rot)
{
    if (!cJSON_IsArray(rot)) {
        return false;
    }
    size_t n = 0;
    for (const cJSON *item = rot->child; item; item = item->next) {
        if (!cJSON_IsString(item) || ++n > SO_MAX_ROTATIONS) {
            return false;
        }
    }
    return n >= 1;
}

/* Characters (code points) of a UTF-8 string, as Python's len() counts them. */
static size_t code_points(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++) {
        n += ((uint8_t)s[i] & 0xC0) != 0x80;
    }
    return n;
}

/*
 * A statement's payload (§4.4): {"version": 2..2^31-1, "keys": [1..4 base64url DER SPKI]}.
 * Fills `set` (empty on entry). SO_OK, 1 for an invalid payload, or SO_ERR_NO_MEM.
 */
static int parse_payload(const uint8_t *payload, size_t len, so_keyset_t *set)
{
    bool no_mem = false;
    cJSON *root = so_json_parse(payload, len, &no_mem);
    if (!root) {
        return no_mem ? SO_ERR_NO_MEM : 1;
    }
    int ret = 1;
    uint64_t version = 0;
    uint8_t *der = NULL;
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
    int listed = cJSON_IsArray(keys) ? cJSON_GetArraySize(keys) : 0;
    if (!so_json_get_int(root, "version", 2, SO_MAX_KEYSET_VERSION, &version) || listed < 1 ||
        listed > (int)SO_MAX_SET_KEYS) {
        goto done;
    }
    der = malloc(MAX_KEY_BYTES);
    if (!der) {
        ret = SO_ERR_NO_MEM;
        goto done;
    }
    ret = SO_OK;
    for (const cJSON *item = keys->child; item && ret == SO_OK; item = item->next) {
        size_t n = cJSON_IsString(item) ? strlen(item->valuestring) : 0, der_len = 0;
        if (!cJSON_IsString(item) || n > SO_MAX_ROTATION_KEY ||
            !so_b64url_decode(item->valuestring, n, der, MAX_KEY_BYTES, &der_len)) {
            ret = 1;
            break;
        }
        so_trusted_key_t *slot = &set->keys[set->count];
        int r = so_spki_parse(der, der_len, slot);
        if (r != SO_OK) {
            ret = r == SO_ERR_NO_MEM ? SO_ERR_NO_MEM : 1;
        } else if (so_keyset_find(set, slot->kid)) {
            so_trusted_key_clear(slot); /* listed twice: counts once */
        } else {
            set->count++;
        }
    }
done:
    free(der);
    cJSON_Delete(root);
    if (ret == SO_OK) {
        set->version = (uint32_t)version;
    } else {
        so_keyset_clear(set);
    }
    return ret;
}

/* Read a statement's payload before verifying it. SO_OK, 1 (unreadable) or SO_ERR_NO_MEM. */
static int read_statement(const char *s, size_t len, so_keyset_t *set)
{
    if (code_points(s, len) > SO_MAX_ROTATION_SIZE) {
        return 1;
    }
    const char *dot1 = memchr(s, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - s)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - s))) {
        return 1; /* not three parts */
    }
    const char *part = dot1 + 1;
    size_t part_len = (size_t)(dot2 - part);
    uint8_t *payload = malloc(so_b64url_decoded_len(part_len) + 1);
    if (!payload) {
        return SO_ERR_NO_MEM;
    }
    size_t payload_len = 0;
    int ret = 1;
    if (so_b64url_decode(part, part_len, payload, so_b64url_decoded_len(part_len) + 1,
                         &payload_len)) {
        ret = parse_payload(payload, payload_len, set);
    }
    free(payload);
    return ret;
}

int so_rotation_walk(const so_keyset_t *own, const cJSON *rot, so_keyset_t **reached)
{
    *reached = NULL;
    const so_keyset_t *current = own;
    so_keyset_t *owned = NULL, *candidate = so_keyset_new();
    if (!candidate) {
        return SO_ERR_NO_MEM;
    }
    int ret = SO_OK;
    for (const cJSON *item = rot->child; item; item = item->next) {
        const char *s = item->valuestring;
        size_t len = strlen(s);
        so_keyset_clear(candidate);
        int r = read_statement(s, len, candidate);
        if (r != SO_OK) {
            ret = r < 0 ? r : SO_OK;
            break;
        }
        if (candidate->version <= current->version) {
            continue; /* already held; its signer may since have been revoked */
        }
        uint8_t *payload = NULL;
        size_t payload_len = 0;
        r = so_jws_open(current->keys, current->count, s, len, "fota-keys+jwt",
                        SO_JWS_MEMBERS_BASIC, &payload, &payload_len, NULL);
        free(payload); /* the same bytes as the payload read above */
        if (r < 0) {
            ret = r;
            break;
        }
        if (r != SO_OK || candidate->version != current->version + 1) {
            break;
        }
        so_keyset_free(owned);
        owned = candidate;
        current = owned;
        candidate = so_keyset_new();
        if (!candidate) {
            ret = SO_ERR_NO_MEM;
            break;
        }
    }
    so_keyset_free(candidate);
    if (ret != SO_OK) {
        so_keyset_free(owned);
        return ret;
    }
    *reached = owned;
    return SO_OK;
}
