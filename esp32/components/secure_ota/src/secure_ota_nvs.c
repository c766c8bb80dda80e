/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The device's state in NVS (namespace SECURE_OTA_NVS_NAMESPACE): the installed and the pending
 * release, the last manifest judged not an update, and the manifest-signing key set (the
 * committed one, and the newer one staged until the release verified under it is confirmed).
 * The resume checkpoint is secure_ota_resume.c's own.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "esp_check.h"
#include "esp_log.h"
#include "nvs.h"
#include "secure_ota_priv.h"

static const char *TAG = "secure_ota";

#define NVS_INSTALLED "installed_seq"
#define NVS_PENDING "pending_seq"
#define NVS_PENDING_PART "pending_part"
#define NVS_JUDGED "judged_sha"     /* the last manifest judged not an update (so_judged_t) */
#define NVS_KEYSET "keyset"         /* the device's manifest-signing key set (so_keyset_export) */
#define NVS_KEYSET_NEXT "keyset_next" /* the newer set a release to be installed was verified under */
#define NVS_KEYSET_NEXT_SEQ "keyset_seq" /* ... and that release's seq */

/* ---- installed and pending release ------------------------------------------------------ */

static esp_err_t nvs_get_u32_or(const char *key, uint32_t fallback, uint32_t *out)
{
    nvs_handle_t nvs;
    esp_err_t err = nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READONLY, &nvs);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        *out = fallback;
        return ESP_OK;
    }
    ESP_RETURN_ON_ERROR(err, TAG, "nvs_open");
    err = nvs_get_u32(nvs, key, out);
    nvs_close(nvs);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        *out = fallback;
        return ESP_OK;
    }
    return err;
}

esp_err_t secure_ota_get_installed_seq(uint32_t *seq)
{
    ESP_RETURN_ON_FALSE(seq, ESP_ERR_INVALID_ARG, TAG, "seq is NULL");
    return nvs_get_u32_or(NVS_INSTALLED, 0, seq);
}

esp_err_t secure_ota_nvs_set_pending(uint32_t seq, uint32_t partition_address)
{
    nvs_handle_t nvs;
    ESP_RETURN_ON_ERROR(nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READWRITE, &nvs), TAG, "nvs_open");
    esp_err_t err = nvs_set_u32(nvs, NVS_PENDING, seq);
    if (err == ESP_OK) {
        err = nvs_set_u32(nvs, NVS_PENDING_PART, partition_address);
    }
    if (err == ESP_OK) {
        err = nvs_commit(nvs);
    }
    nvs_close(nvs);
    return err;
}

esp_err_t secure_ota_nvs_get_pending(uint32_t *seq, uint32_t *partition_address)
{
    ESP_RETURN_ON_ERROR(nvs_get_u32_or(NVS_PENDING, 0, seq), TAG, "pending seq");
    ESP_RETURN_ON_ERROR(nvs_get_u32_or(NVS_PENDING_PART, 0, partition_address), TAG,
                        "pending slot");
    return ESP_OK;
}

/* Read a blob (at most SO_KEYSET_BLOB_MAX bytes) from an open NVS handle; malloc'd. */
static esp_err_t nvs_read_keyset(nvs_handle_t nvs, const char *key, uint8_t **blob, size_t *len)
{
    *blob = NULL;
    *len = 0;
    esp_err_t err = nvs_get_blob(nvs, key, NULL, len);
    if (err != ESP_OK) {
        return err; /* ESP_ERR_NVS_NOT_FOUND: nothing stored */
    }
    ESP_RETURN_ON_FALSE(*len > 0 && *len <= SO_KEYSET_BLOB_MAX, ESP_ERR_INVALID_SIZE, TAG,
                        "%s: %u bytes", key, (unsigned)*len);
    *blob = malloc(*len);
    ESP_RETURN_ON_FALSE(*blob, ESP_ERR_NO_MEM, TAG, "no memory");
    err = nvs_get_blob(nvs, key, *blob, len);
    if (err != ESP_OK) {
        free(*blob);
        *blob = NULL;
    }
    return err;
}

/* At confirmation of release `installed`: the key set staged for it becomes the device's. */
static esp_err_t commit_staged_keyset(nvs_handle_t nvs, uint32_t installed)
{
    uint32_t staged_seq = 0;
    uint8_t *blob = NULL;
    size_t len = 0;
    if (nvs_get_u32(nvs, NVS_KEYSET_NEXT_SEQ, &staged_seq) != ESP_OK || staged_seq != installed ||
        nvs_read_keyset(nvs, NVS_KEYSET_NEXT, &blob, &len) != ESP_OK) {
        return ESP_OK; /* this release brought no newer key set */
    }
    esp_err_t err = ESP_OK;
    uint32_t version = so_keyset_blob_version(blob, len);
    if (version > 0) {
        err = nvs_set_blob(nvs, NVS_KEYSET, blob, len);
        ESP_LOGI(TAG, "manifest-signing key set version %" PRIu32 " is now trusted", version);
    }
    free(blob);
    return err;
}

esp_err_t secure_ota_nvs_finish_pending(uint32_t seq, bool booted)
{
    nvs_handle_t nvs;
    ESP_RETURN_ON_ERROR(nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READWRITE, &nvs), TAG, "nvs_open");
    esp_err_t err = ESP_OK;
    if (booted) {
        /* the image we installed is the one running and it passed its self-test */
        err = nvs_set_u32(nvs, NVS_INSTALLED, seq);
        if (err == ESP_OK) {
            err = commit_staged_keyset(nvs, seq);
        }
        ESP_LOGI(TAG, "release %" PRIu32 " is installed", seq);
    } else {
        ESP_LOGW(TAG, "release %" PRIu32 " did not boot (rolled back); not recorded", seq);
    }
    if (err == ESP_OK) {
        nvs_erase_key(nvs, NVS_PENDING);
        nvs_erase_key(nvs, NVS_PENDING_PART);
        nvs_erase_key(nvs, NVS_KEYSET_NEXT);
        nvs_erase_key(nvs, NVS_KEYSET_NEXT_SEQ);
        err = nvs_commit(nvs);
    }
    nvs_close(nvs);
    return err;
}

/* ---- the last manifest judged not an update ---------------------------------------------- */

/* so_judged_t as a blob: the SHA-256's 64 hex digits, exp as u64 LE (0: none; claims never
 * have exp 0), seq as u32 LE. Blobs of 64 or 72 bytes were written by earlier versions of this
 * component (without exp, without seq): they are ignored, so the next poll fetches the
 * manifest and judges it again. */
#define JUDGED_BLOB_LEN (64 + 8 + 4)

void secure_ota_nvs_remember_judged(const so_judged_t *judged)
{
    uint8_t blob[JUDGED_BLOB_LEN];
    uint64_t exp = judged->has_exp ? judged->exp : 0;
    memcpy(blob, judged->sha256_hex, 64);
    for (size_t i = 0; i < 8; i++) {
        blob[64 + i] = (uint8_t)(exp >> (8 * i));
    }
    for (size_t i = 0; i < 4; i++) {
        blob[72 + i] = (uint8_t)(judged->seq >> (8 * i));
    }
    nvs_handle_t nvs;
    if (nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READWRITE, &nvs) != ESP_OK) {
        return;
    }
    if (nvs_set_blob(nvs, NVS_JUDGED, blob, sizeof blob) == ESP_OK) {
        nvs_commit(nvs);
    }
    nvs_close(nvs);
}

void secure_ota_nvs_forget_judged(void)
{
    nvs_handle_t nvs;
    if (nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READWRITE, &nvs) != ESP_OK) {
        return;
    }
    if (nvs_erase_key(nvs, NVS_JUDGED) == ESP_OK) {
        nvs_commit(nvs);
    }
    nvs_close(nvs);
}

bool secure_ota_nvs_judged(so_judged_t *out)
{
    memset(out, 0, sizeof *out);
    nvs_handle_t nvs;
    if (nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READONLY, &nvs) != ESP_OK) {
        return false;
    }
    uint8_t blob[JUDGED_BLOB_LEN];
    size_t len = sizeof blob;
    bool ok = nvs_get_blob(nvs, NVS_JUDGED, blob, &len) == ESP_OK && len == JUDGED_BLOB_LEN;
    nvs_close(nvs);
    if (!ok) {
        return false;
    }
    memcpy(out->sha256_hex, blob, 64);
    out->sha256_hex[64] = '\0';
    for (size_t i = 0; i < 8; i++) {
        out->exp |= (uint64_t)blob[64 + i] << (8 * i);
    }
    out->has_exp = out->exp != 0;
    for (size_t i = 0; i < 4; i++) {
        out->seq |= (uint32_t)blob[72 + i] << (8 * i);
    }
    return true;
}

/* ---- the device's bearer token ------------------------------------------------------------ */

bool secure_ota_nvs_token(char *buf, size_t cap)
{
    nvs_handle_t nvs;
    if (cap == 0 || nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READONLY, &nvs) != ESP_OK) {
        return false;
    }
    size_t len = cap;
    bool ok = nvs_get_str(nvs, SECURE_OTA_NVS_TOKEN, buf, &len) == ESP_OK && len > 1;
    nvs_close(nvs);
    if (!ok) {
        buf[0] = '\0';
    }
    return ok;
}

/* ---- the manifest-signing key set (docs/formats.md §4.4) ---------------------------------- */

void secure_ota_nvs_load_keyset(so_keyring_t *ring)
{
    nvs_handle_t nvs;
    if (nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READONLY, &nvs) != ESP_OK) {
        return; /* nothing stored yet */
    }
    uint8_t *blob = NULL;
    size_t len = 0;
    esp_err_t err = nvs_read_keyset(nvs, NVS_KEYSET, &blob, &len);
    nvs_close(nvs);
    if (err == ESP_OK && so_keyset_blob_version(blob, len) > so_keyring_keyset_version(ring)) {
        int r = so_keyring_load_keyset(ring, blob, len);
        if (r != SO_OK) {
            ESP_LOGE(TAG, "stored key set unreadable (%d): using the embedded keys", r);
        }
    } else if (err != ESP_OK && err != ESP_ERR_NVS_NOT_FOUND) {
        ESP_LOGE(TAG, "stored key set: %s; using the embedded keys", esp_err_to_name(err));
    }
    free(blob);
    ESP_LOGD(TAG, "manifest-signing key set version %" PRIu32 " (%u keys)",
             so_keyring_keyset_version(ring), (unsigned)so_keyring_signing_key_count(ring));
}

esp_err_t secure_ota_nvs_stage_keyset(const so_keyset_t *set, uint32_t seq)
{
    size_t len = 0;
    ESP_RETURN_ON_ERROR(secure_ota_err_from_core(so_keyset_export(set, NULL, 0, &len)), TAG,
                        "key set size");
    uint8_t *blob = malloc(len);
    ESP_RETURN_ON_FALSE(blob, ESP_ERR_NO_MEM, TAG, "no memory");
    esp_err_t ret = secure_ota_err_from_core(so_keyset_export(set, blob, len, &len));
    nvs_handle_t nvs;
    ESP_GOTO_ON_ERROR(ret, done, TAG, "key set export");
    ESP_GOTO_ON_ERROR(nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READWRITE, &nvs), done, TAG,
                      "nvs_open");
    uint8_t *staged = NULL;
    size_t staged_len = 0;
    uint32_t staged_seq = 0;
    bool same = nvs_read_keyset(nvs, NVS_KEYSET_NEXT, &staged, &staged_len) == ESP_OK &&
                staged_len == len && memcmp(staged, blob, len) == 0 &&
                nvs_get_u32(nvs, NVS_KEYSET_NEXT_SEQ, &staged_seq) == ESP_OK && staged_seq == seq;
    free(staged);
    if (!same) {
        ret = nvs_set_blob(nvs, NVS_KEYSET_NEXT, blob, len);
        if (ret == ESP_OK) {
            ret = nvs_set_u32(nvs, NVS_KEYSET_NEXT_SEQ, seq);
        }
        if (ret == ESP_OK) {
            ret = nvs_commit(nvs);
        }
    }
    nvs_close(nvs);
done:
    free(blob);
    return ret;
}
