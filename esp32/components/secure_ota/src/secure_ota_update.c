/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * After the check: secure_ota_perform_update() (the binary by its signed seq, through
 * esp_https_ota + esp_encrypted_img here, or the resumable path of secure_ota_resume.c),
 * secure_ota_mark_running_valid() after the reboot, and the seed's check_for_update() /
 * perform_update() wrappers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "esp_check.h"
#include "esp_encrypted_img.h"
#include "esp_https_ota.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "sdkconfig.h"
#include "secure_ota_priv.h"

#if !CONFIG_ESP_HTTPS_OTA_DECRYPT_CB
#error "secure_ota needs CONFIG_ESP_HTTPS_OTA_DECRYPT_CB=y (esp_encrypted_img with esp_https_ota)"
#endif
/* esp_encrypted_img (>= 2.4) decrypts one scheme, chosen in its own Kconfig: it must be ours */
#if CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC && !CONFIG_PRE_ENCRYPTED_OTA_USE_ECIES
#error "CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC needs esp_encrypted_img's CONFIG_PRE_ENCRYPTED_OTA_USE_ECIES"
#endif
#if !CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC && CONFIG_PRE_ENCRYPTED_OTA_USE_ECIES
#error "esp_encrypted_img is set to ECIES: set CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC too"
#endif

static const char *TAG = "secure_ota";

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

/* esp_https_ota's init callback has no context: the header of the one running update */
static char s_auth[SO_AUTH_HEADER_MAX];

static esp_err_t add_auth_header(esp_http_client_handle_t client)
{
    return s_auth[0] ? esp_http_client_set_header(client, "Authorization", s_auth) : ESP_OK;
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
#if CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC
        .hmac_key_id = CONFIG_SECURE_OTA_IMAGE_HMAC_KEY_ID,
#else
        .rsa_priv_key = cfg->image_key.pem,
        .rsa_priv_key_len = cfg->image_key.len,
#endif
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
    ESP_GOTO_ON_ERROR(secure_ota_auth_header(cfg, s_auth, sizeof s_auth), fail, TAG,
                      "device token");
    esp_https_ota_config_t ota_cfg = {
        .http_config = &http,
        .http_client_init_cb = add_auth_header,
        .partial_http_download = chunk > 0,
        .max_http_request_size = (int)chunk,
        .decrypt_cb = decrypt_cb,
        .decrypt_user_ctx = &ctx,
        .enc_img_header_size = esp_encrypted_img_get_header_size(),
    };
    /* set before the request: esp_https_ota_begin reads the response head, each read bounded
     * by timeout_ms only (ESP-IDF < 5.5), so its time counts against the deadline too */
    const int64_t deadline = secure_ota_deadline(cfg, claims->enc_size);
    ESP_GOTO_ON_ERROR(esp_https_ota_begin(&ota_cfg, &ota), fail, TAG, "esp_https_ota_begin");
    ESP_GOTO_ON_FALSE(esp_timer_get_time() < deadline, ESP_ERR_TIMEOUT, fail, TAG,
                      "response head too slow: past the download's deadline");
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
    ESP_RETURN_ON_ERROR(secure_ota_check_config(cfg), TAG, "config");
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
    /* best effort, like every report: an operator sees the download begin (the server keeps
     * the device pending in its rollout until installed / confirmed or a failure) */
    secure_ota_report(cfg, SO_EVENT_DOWNLOADING, 0, info->claims.seq, NULL);
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
    /* reports are best effort: they never change `ret` */
    int reason = secure_ota_err_is_reason(ret) ? ret - SECURE_OTA_ERR_BASE : 0;
    if (ret == ESP_OK) {
        secure_ota_report(cfg, SO_EVENT_INSTALLED, 0, info->claims.seq, NULL);
    } else if (reason > 0 && reason < SO_REASON_CONNECTION_FAILED) {
        secure_ota_report(cfg, SO_EVENT_REJECTED, reason, info->claims.seq, NULL);
    } else {
        secure_ota_report(cfg, SO_EVENT_FAILED, 0, info->claims.seq, secure_ota_err_to_name(ret));
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
    esp_err_t err = secure_ota_nvs_get_pending(&pending, &part);
    if (err != ESP_OK || !pending) {
        return err;
    }
    /* the pending release counts as installed only if its slot is the one running */
    bool booted = running && running->address == part;
    err = secure_ota_nvs_finish_pending(pending, booted);
    /* reported by the next check (there is no configuration to send with here) */
    secure_ota_report_later(booted ? SO_EVENT_CONFIRMED : SO_EVENT_ROLLED_BACK, pending);
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
