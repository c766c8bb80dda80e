/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * ESP-IDF glue of secure_ota: HTTP, NVS, OTA slots, esp_https_ota + esp_encrypted_img. Every
 * decision is taken by the portable core (../core); this file only moves bytes and maps codes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esp_app_desc.h"
#include "esp_check.h"
#include "esp_efuse.h"
#include "esp_encrypted_img.h"
#include "esp_https_ota.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_random.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "nvs.h"
#include "sdkconfig.h"
#include "secure_ota_priv.h"

#if !CONFIG_ESP_HTTPS_OTA_DECRYPT_CB
#error "secure_ota needs CONFIG_ESP_HTTPS_OTA_DECRYPT_CB=y (esp_encrypted_img with esp_https_ota)"
#endif

static const char *TAG = "secure_ota";

#define NVS_INSTALLED "installed_seq"
#define NVS_PENDING "pending_seq"
#define NVS_PENDING_PART "pending_part"
#define NVS_JUDGED "judged_sha"     /* SHA-256 of the last manifest judged not an update */
#define NVS_KEYSET "keyset"         /* the device's manifest-signing key set (so_keyset_export) */
#define NVS_KEYSET_NEXT "keyset_next" /* the newer set a release to be installed was verified under */
#define NVS_KEYSET_NEXT_SEQ "keyset_seq" /* ... and that release's seq */
/* a clock before this (2024-01-01) has not been set */
#define CLOCK_FLOOR 1704067200

/* ---- errors ------------------------------------------------------------------------------ */

const char *secure_ota_err_to_name(esp_err_t err)
{
    if (secure_ota_err_is_reason(err)) {
        return so_reason_name(err - SECURE_OTA_ERR_BASE);
    }
    if (err == SECURE_OTA_ERR_KEY) {
        return "SECURE_OTA_ERR_KEY";
    }
    if (err == SECURE_OTA_ERR_SERVER) {
        return "SECURE_OTA_ERR_SERVER";
    }
    return esp_err_to_name(err);
}

esp_err_t secure_ota_err_from_core(int result)
{
    if (result == SO_OK) {
        return ESP_OK;
    }
    if (result > 0 && result < SO_REASON_COUNT) {
        return SECURE_OTA_ERR_BASE + result;
    }
    switch (result) {
    case SO_ERR_NO_MEM: return ESP_ERR_NO_MEM;
    case SO_ERR_INVALID_ARG: return ESP_ERR_INVALID_ARG;
    case SO_ERR_KEY: return SECURE_OTA_ERR_KEY;
    case SO_ERR_STATE: return ESP_ERR_INVALID_STATE;
    default: return ESP_FAIL;
    }
}

void secure_ota_log_metric(const char *name, int64_t value)
{
#if CONFIG_SECURE_OTA_LOG_METRICS
    ESP_LOGI(TAG, "metrics %s=%" PRId64, name, value);
#else
    (void)name;
    (void)value;
#endif
}

/* ---- configuration and keys ---------------------------------------------------------------- */

void secure_ota_config_from_kconfig(secure_ota_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->server_url = CONFIG_SECURE_OTA_SERVER_URL;
    cfg->device_type = CONFIG_SECURE_OTA_DEVICE_TYPE;
    cfg->timeout_ms = CONFIG_SECURE_OTA_HTTP_TIMEOUT_MS;
    cfg->chunk_size = CONFIG_SECURE_OTA_CHUNK_SIZE;
#if CONFIG_SECURE_OTA_RESUMABLE
    cfg->resumable = true;
#endif
#if CONFIG_SECURE_OTA_TRUSTED_CLOCK
    cfg->trusted_clock = true;
#endif
}

static int device_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    esp_fill_random(out, len);
    return 0;
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

/* The key set stored in NVS replaces the embedded one if it is newer (§4.4). */
static void load_stored_keyset(so_keyring_t *ring)
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

esp_err_t secure_ota_keyring(const secure_ota_config_t *cfg, so_keyring_t **out)
{
    so_keyring_t *ring = NULL;
    int r = so_keyring_new(device_rng, NULL, &ring);
    if (r == SO_OK) {
        r = so_keyring_set_manifest_key(ring, (const uint8_t *)cfg->manifest_key.pem,
                                        cfg->manifest_key.len);
    }
    if (r == SO_OK) {
        r = so_keyring_set_image_key(ring, (const uint8_t *)cfg->image_key.pem, cfg->image_key.len);
    }
    for (size_t i = 0; r == SO_OK && i < cfg->signing_key_count; i++) {
        r = so_keyring_add_signing_key(ring, (const uint8_t *)cfg->signing_keys[i].pem,
                                       cfg->signing_keys[i].len);
    }
    if (r == SO_OK) {
        r = so_keyring_set_keyset_version(ring, cfg->keyset_version
                                                    ? cfg->keyset_version
                                                    : (uint32_t)CONFIG_SECURE_OTA_KEYSET_VERSION);
    }
    for (size_t i = 0; r == SO_OK && i < cfg->freshness_key_count; i++) {
        r = so_keyring_add_freshness_key(ring, (const uint8_t *)cfg->freshness_keys[i].pem,
                                         cfg->freshness_keys[i].len);
    }
    if (r == SO_OK) {
        r = so_keyring_set_secure_boot_key(ring, (const uint8_t *)cfg->secure_boot_key.pem,
                                           cfg->secure_boot_key.len);
    }
    if (r == SO_OK && so_keyring_signing_key_count(ring) == 0) {
        r = SO_ERR_KEY;
    }
    if (r == SO_OK) {
        load_stored_keyset(ring);
    }
    if (r != SO_OK) {
        so_keyring_free(ring);
        ESP_LOGE(TAG, "keys: %s", secure_ota_err_to_name(secure_ota_err_from_core(r)));
        return secure_ota_err_from_core(r);
    }
    *out = ring;
    return ESP_OK;
}

static esp_err_t check_config(const secure_ota_config_t *cfg)
{
    ESP_RETURN_ON_FALSE(cfg && cfg->server_url && cfg->device_type && cfg->ca_cert.pem,
                        ESP_ERR_INVALID_ARG, TAG, "incomplete configuration");
    ESP_RETURN_ON_FALSE(so_name_ok(cfg->device_type), ESP_ERR_INVALID_ARG, TAG,
                        "device type '%s' is not a valid name", cfg->device_type);
    ESP_RETURN_ON_FALSE(strlen(cfg->server_url) < SECURE_OTA_URL_MAX - 128, ESP_ERR_INVALID_ARG,
                        TAG, "server URL too long");
    return ESP_OK;
}

/* ---- NVS ---------------------------------------------------------------------------------- */

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

/* The last manifest judged not an update (the installed release), as so_judged_t: its SHA-256
 * for If-None-Match, and its exp, so that so_decide_unchanged can judge a 304 for it. Blob: the
 * 64 hex digits, then exp as u64 LE (0: none; claims never have exp 0). */
#define JUDGED_BLOB_LEN (64 + 8)

static void remember_judged(const so_judged_t *judged)
{
    uint8_t blob[JUDGED_BLOB_LEN];
    uint64_t exp = judged->has_exp ? judged->exp : 0;
    memcpy(blob, judged->sha256_hex, 64);
    for (size_t i = 0; i < 8; i++) {
        blob[64 + i] = (uint8_t)(exp >> (8 * i));
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

static bool judged(so_judged_t *out)
{
    memset(out, 0, sizeof *out);
    nvs_handle_t nvs;
    if (nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READONLY, &nvs) != ESP_OK) {
        return false;
    }
    uint8_t blob[JUDGED_BLOB_LEN];
    size_t len = sizeof blob;
    /* 64 bytes: written by an earlier version of this component, without exp */
    bool ok = nvs_get_blob(nvs, NVS_JUDGED, blob, &len) == ESP_OK &&
              (len == 64 || len == JUDGED_BLOB_LEN);
    nvs_close(nvs);
    if (!ok) {
        return false;
    }
    memcpy(out->sha256_hex, blob, 64);
    out->sha256_hex[64] = '\0';
    for (size_t i = 0; len == JUDGED_BLOB_LEN && i < 8; i++) {
        out->exp |= (uint64_t)blob[64 + i] << (8 * i);
    }
    out->has_exp = out->exp != 0;
    return true;
}

/* Stage the newer key set a release was verified under, until that release is confirmed.
 * Written only when it differs from what is staged already. */
static esp_err_t stage_keyset(const so_keyset_t *set, uint32_t seq)
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

/* ---- check ---------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *buf;
    size_t len;
} body_t;

static esp_err_t collect(void *ctx, const uint8_t *data, size_t len)
{
    body_t *body = ctx;
    if (len > SO_MAX_MANIFEST_SIZE - body->len) {
        return SECURE_OTA_ERR_MANIFEST_TOO_LARGE;
    }
    memcpy(body->buf + body->len, data, len);
    body->len += len;
    return ESP_OK;
}

static esp_err_t device_facts(const secure_ota_config_t *cfg, so_device_facts_t *facts)
{
    uint32_t installed = 0;
    ESP_RETURN_ON_ERROR(secure_ota_get_installed_seq(&installed), TAG, "installed seq");
    const esp_partition_t *slot = esp_ota_get_next_update_partition(NULL);
    ESP_RETURN_ON_FALSE(slot, ESP_ERR_NOT_FOUND, TAG, "no OTA slot to update into");
    memset(facts, 0, sizeof *facts);
    facts->device_type = cfg->device_type;
    facts->chip_id = CONFIG_IDF_FIRMWARE_CHIP_ID;
    facts->installed_seq = installed;
    facts->secure_version = esp_efuse_read_secure_version();
    facts->slot_size = slot->size;
    time_t now = time(NULL);
    facts->has_clock = cfg->trusted_clock && now > CLOCK_FLOOR;
    facts->now = facts->has_clock ? (uint64_t)now : 0;
    return ESP_OK;
}

esp_err_t secure_ota_check_for_update(const secure_ota_config_t *cfg, secure_ota_update_info_t *out)
{
    ESP_RETURN_ON_FALSE(out, ESP_ERR_INVALID_ARG, TAG, "out is NULL");
    memset(out, 0, sizeof *out);
    ESP_RETURN_ON_ERROR(check_config(cfg), TAG, "config");
    so_keyring_t *ring = NULL;
    ESP_RETURN_ON_ERROR(secure_ota_keyring(cfg, &ring), TAG, "keys");

    esp_err_t ret = ESP_OK;
    so_keyset_t *reached = NULL;
    char *url = malloc(SECURE_OTA_URL_MAX);
    secure_ota_headers_t *headers = calloc(1, sizeof *headers);
    body_t body = {.buf = malloc(SO_MAX_MANIFEST_SIZE)};
    ESP_GOTO_ON_FALSE(url && headers && body.buf, ESP_ERR_NO_MEM, done, TAG, "no memory");

    bool freshness = so_keyring_freshness_key_count(ring) > 0;
    char nonce[33] = "";
    if (freshness) {
        uint8_t raw[16];
        esp_fill_random(raw, sizeof raw);
        for (size_t i = 0; i < sizeof raw; i++) {
            snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
        }
    }
    snprintf(url, SECURE_OTA_URL_MAX, "%s/update/newest/manifest?deviceType=%s%s%s",
             cfg->server_url, cfg->device_type, freshness ? "&nonce=" : "", nonce);
    so_judged_t last;
    bool have_judged = judged(&last);
    secure_ota_request_t req = {
        .url = url,
        .if_none_match = have_judged ? last.sha256_hex : NULL,
        .max_body = 0, /* `collect` refuses more than 16 KiB as manifest_too_large */
        .sink = collect,
        .sink_ctx = &body,
    };
    int status = 0;
    size_t len = 0;
    ret = secure_ota_http_get(cfg, &req, headers, &status, &len);
    if (ret == SECURE_OTA_ERR_MANIFEST_TOO_LARGE) {
        out->verdict = ret;
        goto done;
    }
    ESP_GOTO_ON_ERROR(ret, done, TAG, "manifest request");
    if (status == 404) {
        ESP_LOGI(TAG, "no release for device type %s", cfg->device_type);
        goto done;
    }
    if (status == 304 && have_judged) {
        /* unchanged since we judged it; with freshness, the server must still vouch for it */
        int r = SO_OK;
        if (freshness) {
            r = headers->freshness_truncated
                    ? SO_REASON_FRESHNESS_INVALID
                    : so_freshness_check_digest(ring, (const uint8_t *)headers->freshness,
                                                strlen(headers->freshness), last.sha256_hex,
                                                nonce, cfg->device_type);
        }
        if (r == SO_OK) {
            so_device_facts_t facts;
            ESP_GOTO_ON_ERROR(device_facts(cfg, &facts), done, TAG, "device facts");
            r = so_decide_unchanged(&last, &facts);
        }
        if (r == SO_REASON_ALREADY_INSTALLED) {
            r = SO_OK; /* nothing new: out->verdict stays ESP_OK (see the header) */
        } else if (r == SO_REASON_EXPIRED) {
            ESP_LOGW(TAG, "the installed release expired at %" PRIu64
                     ": the server is withholding updates", last.exp);
        }
        ret = secure_ota_err_from_core(r);
        out->verdict = ret;
        goto done;
    }
    ESP_GOTO_ON_FALSE(status == 200, SECURE_OTA_ERR_SERVER, done, TAG, "manifest: HTTP %d", status);

    /* RSA-4096 OAEP in software on chips without a 4096-bit RSA accelerator: seconds without
     * blocking, hence CONFIG_SECURE_OTA_TASK_PRIORITY */
    const int64_t open_start = esp_timer_get_time();
    int r = so_manifest_open(ring, body.buf, body.len, &out->claims, NULL, &reached);
    secure_ota_log_metric("manifest_open_us", esp_timer_get_time() - open_start);
    out->have_claims = (r == SO_OK);
    out->keyset_version = reached ? so_keyset_version(reached) : so_keyring_keyset_version(ring);
    if (r == SO_OK && freshness) {
        r = headers->freshness_truncated || !headers->freshness[0]
                ? SO_REASON_FRESHNESS_INVALID
                : so_freshness_check(ring, (const uint8_t *)headers->freshness,
                                     strlen(headers->freshness), body.buf, body.len, nonce,
                                     cfg->device_type);
    }
    if (r == SO_OK) {
        so_device_facts_t facts;
        ESP_GOTO_ON_ERROR(device_facts(cfg, &facts), done, TAG, "device facts");
        r = so_decide(&out->claims, &facts);
    }
    out->server_release_id = (uint32_t)strtoul(headers->release, NULL, 10);
    if (r == SO_OK && out->server_release_id && out->server_release_id != out->claims.seq) {
        ESP_LOGW(TAG, "server announces release %" PRIu32 ", the signed manifest says %" PRIu32
                 "; using the signed value", out->server_release_id, out->claims.seq);
    }
    out->verdict = secure_ota_err_from_core(r);
    if (r == SO_OK) {
        out->available = true;
        ESP_LOGI(TAG, "update available: %s %s (seq %" PRIu32 ", %" PRIu32 " bytes)",
                 out->claims.project, out->claims.version, out->claims.seq,
                 out->claims.image_size);
        if (reached && stage_keyset(reached, out->claims.seq) != ESP_OK) {
            /* the update stays possible; the device walks the rotations again next time */
            ESP_LOGW(TAG, "key set version %" PRIu32 " not staged", out->keyset_version);
        }
    } else if (r == SO_REASON_ALREADY_INSTALLED) {
        so_judged_t record;
        if (so_judged_init(&record, body.buf, body.len, &out->claims) == SO_OK) {
            remember_judged(&record);
        }
        ESP_LOGI(TAG, "up to date (seq %" PRIu32 ")", out->claims.seq);
    } else {
        ret = out->verdict;
        ESP_LOGW(TAG, "newest release refused: %s", secure_ota_err_to_name(ret));
    }
done:
    if (ret != ESP_OK && !out->verdict && secure_ota_err_is_reason(ret)) {
        out->verdict = ret;
    }
    if (!out->available) {
        out->have_claims = out->have_claims && out->verdict != ESP_OK;
    }
    so_keyset_free(reached);
    so_keyring_free(ring);
    free(url);
    free(headers);
    free(body.buf);
    return ret;
}

/* ---- perform: esp_https_ota + esp_encrypted_img ------------------------------------------- */

typedef struct {
    esp_decrypt_handle_t dec;
    so_image_check_t *check;
    int reason;          /* core reason seen while streaming */
    bool decrypt_failed; /* esp_encrypted_img refused the stream */
} stream_ctx_t;

/* Runs inside esp_https_ota_perform for every chunk, header included (enc_img_header_size). */
static esp_err_t decrypt_cb(decrypt_cb_arg_t *args, void *user_ctx)
{
    stream_ctx_t *ctx = user_ctx;
    args->data_out = NULL;
    args->data_out_len = 0;
    size_t unused = 0;
    int r = so_image_check_update(ctx->check, (const uint8_t *)args->data_in, args->data_in_len,
                                  NULL, 0, &unused);
    if (r != SO_OK) {
        ctx->reason = r; /* data beyond enc_size: refuse at once */
        return ESP_FAIL;
    }
    pre_enc_decrypt_arg_t pargs = {.data_in = args->data_in, .data_in_len = args->data_in_len};
    esp_err_t err = esp_encrypted_img_decrypt_data(ctx->dec, &pargs);
    if (err != ESP_OK && err != ESP_ERR_NOT_FINISHED) {
        ctx->decrypt_failed = true;
        free(pargs.data_out);
        return ESP_FAIL;
    }
    if (pargs.data_out_len) {
        so_image_check_plain(ctx->check, (const uint8_t *)pargs.data_out, pargs.data_out_len);
    }
    args->data_out = pargs.data_out; /* esp_https_ota frees it after writing */
    args->data_out_len = pargs.data_out_len;
    return ESP_OK;
}

static esp_err_t plain_update(const secure_ota_config_t *cfg, const so_keyring_t *ring,
                              const so_claims_t *claims, const char *url)
{
    esp_err_t ret = ESP_OK;
    esp_https_ota_handle_t ota = NULL;
    stream_ctx_t ctx = {0};
    int r = so_image_check_new(ring, claims, true, &ctx.check);
    ESP_RETURN_ON_ERROR(secure_ota_err_from_core(r), TAG, "image check");
    esp_decrypt_cfg_t dcfg = {
        .rsa_priv_key = cfg->image_key.pem,
        .rsa_priv_key_len = cfg->image_key.len,
    };
    ctx.dec = esp_encrypted_img_decrypt_start(&dcfg);
    ESP_GOTO_ON_FALSE(ctx.dec, ESP_ERR_NO_MEM, fail, TAG, "esp_encrypted_img_decrypt_start");

    esp_http_client_config_t http = {
        .url = url,
        .cert_pem = cfg->ca_cert.pem,
        .cert_len = cfg->ca_cert.len,
        .timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : CONFIG_SECURE_OTA_HTTP_TIMEOUT_MS,
        .keep_alive_enable = true,
        .disable_auto_redirect = true,
    };
    size_t chunk = cfg->chunk_size ? cfg->chunk_size : CONFIG_SECURE_OTA_CHUNK_SIZE;
    esp_https_ota_config_t ota_cfg = {
        .http_config = &http,
        .partial_http_download = chunk > 0,
        .max_http_request_size = (int)chunk,
        .decrypt_cb = decrypt_cb,
        .decrypt_user_ctx = &ctx,
        .enc_img_header_size = esp_encrypted_img_get_header_size(),
    };
    const int64_t deadline = secure_ota_deadline(cfg, claims->enc_size);
    ESP_GOTO_ON_ERROR(esp_https_ota_begin(&ota_cfg, &ota), fail, TAG, "esp_https_ota_begin");
    esp_err_t err;
    while ((err = esp_https_ota_perform(ota)) == ESP_ERR_HTTPS_OTA_IN_PROGRESS) {
        if (esp_timer_get_time() >= deadline) {
            err = ESP_ERR_TIMEOUT; /* slow retrieval: the server trickles the image */
            break;
        }
    }
    if (err != ESP_OK || !esp_https_ota_is_complete_data_received(ota)) {
        ESP_LOGE(TAG, "download failed: %s", esp_err_to_name(err));
        ret = ctx.reason ? secure_ota_err_from_core(ctx.reason)
              : ctx.decrypt_failed ? SECURE_OTA_ERR_IMAGE_DECRYPT_FAILED
              : (err != ESP_OK ? err : SECURE_OTA_ERR_IMAGE_SIZE_MISMATCH);
        goto fail;
    }
    /* esp_encrypted_img_decrypt_end checks the GCM tag and frees the handle in all cases */
    bool tag_ok = esp_encrypted_img_decrypt_end(ctx.dec) == ESP_OK;
    ctx.dec = NULL;
    r = so_image_check_finish(ctx.check, tag_ok);
    ESP_GOTO_ON_ERROR(secure_ota_err_from_core(r), fail, TAG, "image refused: %s",
                      so_reason_name(r) ? so_reason_name(r) : "error");
    /* every check of §8 passed: now the slot may become bootable */
    ret = esp_https_ota_finish(ota);
    ota = NULL;
    so_image_check_free(ctx.check);
    return ret;
fail:
    if (ota) {
        esp_https_ota_abort(ota);
    }
    if (ctx.dec) {
        esp_encrypted_img_decrypt_abort(ctx.dec);
    }
    so_image_check_free(ctx.check);
    return ret;
}

esp_err_t secure_ota_perform_update(const secure_ota_config_t *cfg,
                                    const secure_ota_update_info_t *info)
{
    ESP_RETURN_ON_ERROR(check_config(cfg), TAG, "config");
    ESP_RETURN_ON_FALSE(info && info->available && info->have_claims, ESP_ERR_INVALID_ARG, TAG,
                        "no update to perform");
    const esp_partition_t *slot = esp_ota_get_next_update_partition(NULL);
    ESP_RETURN_ON_FALSE(slot, ESP_ERR_NOT_FOUND, TAG, "no OTA slot");
    ESP_RETURN_ON_FALSE(info->claims.image_size <= slot->size, SECURE_OTA_ERR_IMAGE_TOO_LARGE, TAG,
                        "image larger than the slot");
    so_keyring_t *ring = NULL;
    ESP_RETURN_ON_ERROR(secure_ota_keyring(cfg, &ring), TAG, "keys");
    char url[SECURE_OTA_URL_MAX];
    snprintf(url, sizeof url, "%s/api/v1/device-types/%s/releases/%" PRIu32 "/binary",
             cfg->server_url, cfg->device_type, info->claims.seq);
    ESP_LOGI(TAG, "downloading release %" PRIu32 " into %s", info->claims.seq, slot->label);
    esp_err_t ret = cfg->resumable ? secure_ota_resumable_update(cfg, ring, &info->claims, url)
                                   : plain_update(cfg, ring, &info->claims, url);
    so_keyring_free(ring);
    if (ret == ESP_OK) {
        ret = secure_ota_nvs_set_pending(info->claims.seq, slot->address);
        ESP_LOGI(TAG, "release %" PRIu32 " verified and selected for the next boot",
                 info->claims.seq);
    } else {
        ESP_LOGE(TAG, "update failed: %s", secure_ota_err_to_name(ret));
    }
    return ret;
}

/* ---- after the reboot ------------------------------------------------------------------ */

esp_err_t secure_ota_mark_running_valid(void)
{
    const esp_partition_t *running = esp_ota_get_running_partition();
    esp_ota_img_states_t state;
    if (running && esp_ota_get_state_partition(running, &state) == ESP_OK &&
        state == ESP_OTA_IMG_PENDING_VERIFY) {
        ESP_RETURN_ON_ERROR(esp_ota_mark_app_valid_cancel_rollback(), TAG, "cancel rollback");
    }
    uint32_t pending = 0, part = 0;
    ESP_RETURN_ON_ERROR(nvs_get_u32_or(NVS_PENDING, 0, &pending), TAG, "pending seq");
    ESP_RETURN_ON_ERROR(nvs_get_u32_or(NVS_PENDING_PART, 0, &part), TAG, "pending slot");
    if (!pending) {
        return ESP_OK;
    }
    nvs_handle_t nvs;
    ESP_RETURN_ON_ERROR(nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READWRITE, &nvs), TAG, "nvs_open");
    esp_err_t err = ESP_OK;
    if (running && running->address == part) {
        /* the image we installed is the one running and it passed its self-test */
        err = nvs_set_u32(nvs, NVS_INSTALLED, pending);
        if (err == ESP_OK) {
            err = commit_staged_keyset(nvs, pending);
        }
        ESP_LOGI(TAG, "release %" PRIu32 " is installed", pending);
    } else {
        ESP_LOGW(TAG, "release %" PRIu32 " did not boot (rolled back); not recorded", pending);
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

/* ---- the seed's interface ---------------------------------------------------------------- */

static secure_ota_config_t default_keys; /* configuration only: set once, read by the wrappers */
static bool have_default_keys;

esp_err_t secure_ota_set_default_keys(const secure_ota_config_t *keys)
{
    ESP_RETURN_ON_FALSE(keys, ESP_ERR_INVALID_ARG, TAG, "keys is NULL");
    default_keys = *keys;
    have_default_keys = true;
    return ESP_OK;
}

static esp_err_t default_config(secure_ota_config_t *cfg)
{
    ESP_RETURN_ON_FALSE(have_default_keys, ESP_ERR_INVALID_STATE, TAG,
                        "call secure_ota_set_default_keys() first");
    secure_ota_config_from_kconfig(cfg);
    cfg->ca_cert = default_keys.ca_cert;
    cfg->manifest_key = default_keys.manifest_key;
    cfg->image_key = default_keys.image_key;
    cfg->signing_keys = default_keys.signing_keys;
    cfg->signing_key_count = default_keys.signing_key_count;
    cfg->keyset_version = default_keys.keyset_version;
    cfg->freshness_keys = default_keys.freshness_keys;
    cfg->freshness_key_count = default_keys.freshness_key_count;
    cfg->secure_boot_key = default_keys.secure_boot_key;
    return ESP_OK;
}

esp_err_t check_for_update(int *result)
{
    ESP_RETURN_ON_FALSE(result, ESP_ERR_INVALID_ARG, TAG, "result is NULL");
    *result = 0;
    secure_ota_config_t cfg;
    ESP_RETURN_ON_ERROR(default_config(&cfg), TAG, "config");
    secure_ota_update_info_t info;
    esp_err_t err = secure_ota_check_for_update(&cfg, &info);
    *result = (err == ESP_OK && info.available) ? 1 : 0;
    return err;
}

esp_err_t perform_update(void)
{
    secure_ota_config_t cfg;
    ESP_RETURN_ON_ERROR(default_config(&cfg), TAG, "config");
    secure_ota_update_info_t info;
    ESP_RETURN_ON_ERROR(secure_ota_check_for_update(&cfg, &info), TAG, "check");
    ESP_RETURN_ON_FALSE(info.available, ESP_ERR_NOT_FOUND, TAG, "no update available");
    ESP_RETURN_ON_ERROR(secure_ota_perform_update(&cfg, &info), TAG, "update");
    ESP_LOGI(TAG, "restarting into the new image");
    esp_restart();
    return ESP_OK; /* not reached */
}
