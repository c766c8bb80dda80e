/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * libFuzzer target for everything a network peer controls. The first input byte picks the
 * entry point; the rest is the attacker's bytes:
 *   0 manifest (JWE + JWS + claims, with the device keys of tests/vectors/keys-v1)
 *   1 inner JWS of a manifest (rot walked, signature against the key set reached, claims)
 *   2 claims JSON       3 freshness statement      4 strict JSON
 *   5 NAME-N.bin against the claims of ok-v1      6 decrypted app image against those claims
 *   7 DER SubjectPublicKeyInfo of a rotation key
 *   8 a JWS header whose `rot` is walked from the device's key set
 *   9 a freshness statement's payload (so_statement_parse: answers, members)
 *  10 the head of an HTTP 304 or 404 answer to a poll ("Name: value" lines; the next byte picks
 *     the status): X-Fota-Release and Content-Encoding parsed as the glue parses them, the
 *     X-Fota-Freshness statement checked for that answer and the answer decided
 * Leaks, out-of-bounds accesses and undefined behaviour abort (ASan, UBSan, LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host_verify.h"
#include "so_internal.h"

static host_keys_t *keys;
static so_claims_t claims;
static uint8_t *manifest;
static size_t manifest_len;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    keys = host_load_keys(SO_VECTORS_DIR "/keys-v1", err, sizeof err);
    manifest = host_read_file(SO_VECTORS_DIR "/ok-v1.manifest", SO_MAX_MANIFEST_SIZE, &manifest_len);
    if (!keys || !manifest ||
        so_manifest_open(host_ring(keys), manifest, manifest_len, &claims, NULL, NULL) != SO_OK) {
        abort();
    }
    return 0;
}

/* Mode 10: an answer's head, as the glue sees it, judged as a 304 or a 404. */
static void answer_head(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return;
    }
    bool not_modified = data[0] & 1;
    char *head = malloc(size);
    if (!head) {
        return;
    }
    memcpy(head, data + 1, size - 1);
    head[size - 1] = '\0';
    const so_keyring_t *ring = host_ring(keys);
    const char *nonce = "00112233445566778899aabbccddeeff";
    so_judged_t judged;
    (void)so_judged_init(&judged, manifest, manifest_len, &claims);
    so_device_facts_t facts = {.device_type = "sensor-v2", .chip_id = claims.chip_id,
                               .installed_seq = claims.seq, .has_clock = true, .now = claims.iat};
    char *line = head;
    while (line) {
        char *next = strstr(line, "\r\n");
        if (next) {
            *next = '\0';
            next += 2;
        }
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            const char *value = colon + 1;
            while (*value == ' ') {
                value++;
            }
            uint32_t seq;
            if (!strcmp(line, "X-Fota-Release")) {
                (void)so_header_seq(value, &seq);
            } else if (!strcmp(line, "Content-Encoding")) {
                (void)so_header_identity(value);
            } else if (!strcmp(line, "X-Fota-Freshness")) {
                const uint8_t *st = (const uint8_t *)value;
                int r = not_modified
                            ? so_freshness_check_digest(ring, st, strlen(value),
                                                        judged.sha256_hex, nonce, "sensor-v2",
                                                        "dev-1")
                            : so_freshness_check_none(ring, st, strlen(value), nonce,
                                                      "sensor-v2", "dev-1");
                if (r == SO_OK) {
                    (void)(not_modified ? so_decide_unchanged(&judged, &facts)
                                        : so_decide_none(&judged, &facts));
                }
            }
        }
        line = next;
    }
    free(head);
}

static void stream(const uint8_t *data, size_t size, bool app_only)
{
    const so_keyring_t *ring = host_ring(keys);
    if (app_only) {
        so_app_check_t *app = NULL;
        if (so_app_check_new(ring, &claims, &app) == SO_OK) {
            so_app_check_update(app, data, size / 2);
            so_app_check_update(app, data + size / 2, size - size / 2);
            (void)so_app_check_finish(app);
        }
        so_app_check_free(app);
        return;
    }
    so_image_check_t *check = NULL;
    uint8_t *out = malloc(size + 1);
    if (out && so_image_check_new(ring, &claims, false, &check) == SO_OK) {
        size_t produced = 0, half = size / 3;
        if (so_image_check_update(check, data, half, out, size + 1, &produced) == SO_OK &&
            so_image_check_update(check, data + half, size - half, out, size + 1, &produced) == SO_OK) {
            (void)so_image_check_finish(check, false);
        }
    }
    so_image_check_free(check);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t mode = data[0] % 11;
    data++;
    size--;
    const so_keyring_t *ring = host_ring(keys);
    so_claims_t out;
    so_keyset_t *reached = NULL;
    switch (mode) {
    case 0:
        (void)so_manifest_open(ring, data, size, &out, NULL, &reached);
        break;
    case 1: {
        so_manifest_info_t info;
        (void)so_signed_manifest_open(ring, (const char *)data, size, &out, &info, &reached);
        break;
    }
    case 2:
        (void)so_claims_parse(data, size, &out);
        break;
    case 3:
        /* as a device without an id, and as device "dev-1" */
        (void)so_freshness_check(ring, data, size, manifest, manifest_len,
                                 "00112233445566778899aabbccddeeff", "sensor-v2", NULL);
        (void)so_freshness_check(ring, data, size, manifest, manifest_len,
                                 "00112233445566778899aabbccddeeff", "sensor-v2", "dev-1");
        break;
    case 4:
        cJSON_Delete(so_json_parse(data, size, NULL));
        break;
    case 5:
        stream(data, size, false);
        break;
    case 6:
        stream(data, size, true);
        break;
    case 7: {
        char kid[65];
        (void)so_spki_key_id(data, size, kid);
        break;
    }
    case 9: {
        so_statement_t st;
        (void)so_statement_parse(data, size, &st);
        break;
    }
    case 10:
        answer_head(data, size);
        break;
    default: {
        cJSON *header = so_json_parse(data, size, NULL);
        const cJSON *rot = cJSON_GetObjectItemCaseSensitive(header, "rot");
        if (rot && so_rotation_shape_ok(rot)) {
            (void)so_rotation_walk(&ring->signing, rot, &reached);
        }
        cJSON_Delete(header);
        break;
    }
    }
    so_keyset_free(reached);
    return 0;
}
