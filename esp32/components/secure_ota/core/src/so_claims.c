/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Manifest claims (docs/formats.md §5), validated in the order of the reference:
 * fmt, secure_boot, image_size, enc_size (and the relation), iat, exp, then the rest.
 */
#include <math.h>
#include <string.h>

#include "so_internal.h"

/* An "integer": a JSON number with an integral value (7, 7.0, 7e0), never a boolean. */
static bool get_int(const cJSON *claims, const char *name, double low, double high, uint64_t *out)
{
    return so_json_get_int(claims, name, low, high, out);
}

static bool control_free(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7F) {
            return false;
        }
    }
    return true;
}

/* A descriptor string: < 32 UTF-8 bytes, no control characters. */
static bool get_text(const cJSON *claims, const char *name, char out[SO_MAX_DESC_STRING])
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);
    if (!cJSON_IsString(item)) {
        return false;
    }
    size_t n = strlen(item->valuestring);
    if (n >= SO_MAX_DESC_STRING || !control_free(item->valuestring)) {
        return false;
    }
    memcpy(out, item->valuestring, n + 1);
    return true;
}

static bool get_name(const cJSON *claims, const char *name, char out[SO_MAX_NAME_LENGTH + 1])
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);
    if (!cJSON_IsString(item) || !so_is_name(item->valuestring)) {
        return false;
    }
    strcpy(out, item->valuestring);
    return true;
}

static bool get_hex(const cJSON *claims, const char *name, char out[65])
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);
    if (!cJSON_IsString(item) || strlen(item->valuestring) != 64 ||
        !so_is_hex64(item->valuestring)) {
        return false;
    }
    memcpy(out, item->valuestring, 65);
    return true;
}

static bool get_scheme(const cJSON *claims, so_secure_boot_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, "secure_boot");
    if (!cJSON_IsString(item)) {
        return false;
    }
    static const so_secure_boot_t all[] = {SO_SB_V1, SO_SB_V2_RSA3072, SO_SB_V2_ECDSA256,
                                           SO_SB_V2_ECDSA384};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(item->valuestring, so_secure_boot_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    }
    return false;
}

static int parse_tree(const cJSON *c, so_claims_t *out)
{
    uint64_t v;
    if (!get_int(c, "fmt", 0, SO_MAX_JSON_INT, &out->fmt)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    if (out->fmt != 1) {
        return SO_REASON_UNSUPPORTED_FORMAT;
    }
    if (!get_scheme(c, &out->secure_boot)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    if (!get_int(c, "image_size", 1, SO_MAX_IMAGE_SIZE, &v)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    out->image_size = (uint32_t)v;
    if (!get_int(c, "enc_size", 1, (double)SO_MAX_IMAGE_SIZE + SO_ENC_HEADER_SIZE, &v) ||
        v != (uint64_t)out->image_size + SO_ENC_HEADER_SIZE) {
        return SO_REASON_INVALID_CLAIMS;
    }
    out->enc_size = (uint32_t)v;
    if (!get_int(c, "iat", 0, SO_MAX_JSON_INT, &out->iat)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    out->has_exp = cJSON_GetObjectItemCaseSensitive(c, "exp") != NULL;
    if (out->has_exp && (!get_int(c, "exp", 0, SO_MAX_JSON_INT, &out->exp) || out->exp <= out->iat)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    if (!get_name(c, "fw_name", out->fw_name) || !get_name(c, "device_type", out->device_type)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    if (!get_int(c, "seq", 1, SO_MAX_SEQ, &v)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    out->seq = (uint32_t)v;
    if (!get_text(c, "version", out->version) || !get_text(c, "project", out->project) ||
        !get_text(c, "idf_ver", out->idf_ver)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    if (!get_int(c, "secure_version", 0, 4294967295.0, &v)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    out->secure_version = (uint32_t)v;
    if (!get_int(c, "chip_id", 0, 65535, &v)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    out->chip_id = (uint16_t)v;
    if (!get_hex(c, "app_elf_sha256", out->app_elf_sha256) ||
        !get_hex(c, "image_sha256", out->image_sha256) ||
        !get_hex(c, "enc_sha256", out->enc_sha256)) {
        return SO_REASON_INVALID_CLAIMS;
    }
    return SO_OK;
}

int so_claims_parse(const uint8_t *json, size_t len, so_claims_t *out)
{
    if (!json || !out) {
        return SO_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    bool no_mem = false;
    cJSON *root = so_json_parse(json, len, &no_mem);
    if (!root) {
        return no_mem ? SO_ERR_NO_MEM : SO_REASON_INVALID_CLAIMS;
    }
    int ret = parse_tree(root, out);
    cJSON_Delete(root);
    if (ret != SO_OK) {
        memset(out, 0, sizeof *out);
    }
    return ret;
}
