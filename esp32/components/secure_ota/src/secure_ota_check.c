/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * secure_ota_check_for_update(): poll the newest manifest (the device's id, If-None-Match with
 * the last one judged not an update, a nonce when freshness keys are configured) and have the
 * core judge the answer: a 200 is opened, its freshness statement checked and decided (so_decide); a 304
 * is judged from the record kept of the manifest it stands for (so_decide_unchanged); a 404
 * ("no release") needs a statement answering "none" and is judged by so_decide_none (the
 * installed release's exp still bounds a freeze). This file gathers the device's facts and
 * records the outcome; every decision is the core's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esp_check.h"
#include "esp_efuse.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "sdkconfig.h"
#include "secure_ota_priv.h"

static const char *TAG = "secure_ota";

/* a clock before this (2024-01-01) has not been set */
#define CLOCK_FLOOR 1704067200

/* the server URL (< SECURE_OTA_URL_MAX - 128) and the poll's path and query: at most 35 + 64
 * (type) + 10 + 64 (id) + 7 + 32 (nonce) characters */
#define POLL_URL_MAX (SECURE_OTA_URL_MAX + 128)

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

/* HTTP 304: the newest manifest is still `last`, judged already_installed before. With
 * freshness keys the server must still vouch for it. */
static esp_err_t judge_unchanged(const secure_ota_config_t *cfg, const so_keyring_t *ring,
                                 const secure_ota_headers_t *headers, const char *nonce,
                                 const char *id, const so_judged_t *last,
                                 secure_ota_update_info_t *out)
{
    int r = SO_OK;
    if (so_keyring_freshness_key_count(ring) > 0) {
        r = headers->freshness_truncated
                ? SO_REASON_FRESHNESS_INVALID
                : so_freshness_check_digest(ring, (const uint8_t *)headers->freshness,
                                            strlen(headers->freshness), last->sha256_hex, nonce,
                                            cfg->device_type, id);
    }
    if (r == SO_OK) {
        so_device_facts_t facts;
        ESP_RETURN_ON_ERROR(device_facts(cfg, &facts), TAG, "device facts");
        r = so_decide_unchanged(last, &facts);
    }
    if (r == SO_REASON_ALREADY_INSTALLED) {
        r = SO_OK; /* nothing new: out->verdict stays ESP_OK (see the header) */
    } else if (r == SO_REASON_EXPIRED) {
        ESP_LOGW(TAG, "the installed release expired at %" PRIu64
                 ": the server is withholding updates", last->exp);
    } else if (r == SO_ERR_STATE) {
        /* the record is not of the installed release: judge the manifest itself next time */
        secure_ota_nvs_forget_judged();
    }
    out->verdict = secure_ota_err_from_core(r);
    return out->verdict;
}

/* HTTP 404: the server has no release for this type. With freshness keys only a statement
 * answering "none" for this poll is believed; the installed release's exp still applies. */
static esp_err_t judge_none(const secure_ota_config_t *cfg, const so_keyring_t *ring,
                            const secure_ota_headers_t *headers, const char *nonce, const char *id,
                            const so_judged_t *last, secure_ota_update_info_t *out)
{
    int r = SO_OK;
    if (so_keyring_freshness_key_count(ring) > 0) {
        r = headers->freshness_truncated
                ? SO_REASON_FRESHNESS_INVALID
                : so_freshness_check_none(ring, (const uint8_t *)headers->freshness,
                                          strlen(headers->freshness), nonce, cfg->device_type,
                                          id);
    }
    if (r == SO_OK) {
        so_device_facts_t facts;
        ESP_RETURN_ON_ERROR(device_facts(cfg, &facts), TAG, "device facts");
        r = so_decide_none(last, &facts);
    }
    if (r == SO_REASON_ALREADY_INSTALLED) {
        ESP_LOGI(TAG, "no release for device type %s", cfg->device_type);
        r = SO_OK;
    }
    out->verdict = secure_ota_err_from_core(r);
    return out->verdict;
}

/* HTTP 200: open the manifest, check the freshness statement, decide; then stage the key set
 * an update was verified under, or remember the installed release's manifest. */
static esp_err_t judge_manifest(const secure_ota_config_t *cfg, const so_keyring_t *ring,
                                const body_t *body, const secure_ota_headers_t *headers,
                                const char *nonce, const char *id, secure_ota_update_info_t *out)
{
    esp_err_t ret = ESP_OK;
    so_keyset_t *reached = NULL;
    /* RSA-4096 OAEP in software on chips without a 4096-bit RSA accelerator: seconds without
     * blocking, hence CONFIG_SECURE_OTA_TASK_PRIORITY */
    const int64_t open_start = esp_timer_get_time();
    int r = so_manifest_open(ring, body->buf, body->len, &out->claims, NULL, &reached);
    secure_ota_log_metric("manifest_open_us", esp_timer_get_time() - open_start);
    out->have_claims = (r == SO_OK);
    out->keyset_version = reached ? so_keyset_version(reached) : so_keyring_keyset_version(ring);
    if (r == SO_OK && so_keyring_freshness_key_count(ring) > 0) {
        r = headers->freshness_truncated || !headers->freshness[0]
                ? SO_REASON_FRESHNESS_INVALID
                : so_freshness_check(ring, (const uint8_t *)headers->freshness,
                                     strlen(headers->freshness), body->buf, body->len, nonce,
                                     cfg->device_type, id);
    }
    if (r == SO_OK) {
        so_device_facts_t facts;
        ESP_GOTO_ON_ERROR(device_facts(cfg, &facts), done, TAG, "device facts");
        r = so_decide(&out->claims, &facts);
    }
    uint32_t announced = 0;
    if (r == SO_OK && headers->release[0] && so_header_seq(headers->release, &announced) != SO_OK) {
        r = SO_REASON_BAD_HEADER; /* as the reference device: every peer value has a reason */
    }
    out->server_release_id = announced;
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
        if (reached && secure_ota_nvs_stage_keyset(reached, out->claims.seq) != ESP_OK) {
            /* the update stays possible; the device walks the rotations again next time */
            ESP_LOGW(TAG, "key set version %" PRIu32 " not staged", out->keyset_version);
        }
    } else if (r == SO_REASON_ALREADY_INSTALLED) {
        so_judged_t record;
        if (so_judged_init(&record, body->buf, body->len, &out->claims) == SO_OK) {
            secure_ota_nvs_remember_judged(&record);
        }
        ESP_LOGI(TAG, "up to date (seq %" PRIu32 ")", out->claims.seq);
    } else {
        ret = out->verdict;
        ESP_LOGW(TAG, "newest release refused: %s", secure_ota_err_to_name(ret));
    }
done:
    so_keyset_free(reached);
    return ret;
}

esp_err_t secure_ota_check_for_update(const secure_ota_config_t *cfg, secure_ota_update_info_t *out)
{
    ESP_RETURN_ON_FALSE(out, ESP_ERR_INVALID_ARG, TAG, "out is NULL");
    memset(out, 0, sizeof *out);
    ESP_RETURN_ON_ERROR(secure_ota_check_config(cfg), TAG, "config");
    so_keyring_t *ring = NULL;
    ESP_RETURN_ON_ERROR(secure_ota_keyring(cfg, &ring), TAG, "keys");
    /* what earlier calls could not report (best effort, never an error here) */
    secure_ota_report_flush(cfg);

    esp_err_t ret = ESP_OK;
    char *url = malloc(POLL_URL_MAX);
    secure_ota_headers_t *headers = calloc(1, sizeof *headers);
    body_t body = {.buf = malloc(SO_MAX_MANIFEST_SIZE)};
    ESP_GOTO_ON_FALSE(url && headers && body.buf, ESP_ERR_NO_MEM, done, TAG, "no memory");
    /* the poll names the device (the id its reports carry, and its per-device token's name):
     * the server decides per device whether a rollout's release is offered, and its statement
     * names the device; the core accepts only a statement naming this id */
    char id[SO_MAX_NAME_LENGTH + 1];
    ESP_GOTO_ON_ERROR(secure_ota_device_id(cfg, id, sizeof id), done, TAG, "device id");

    bool freshness = so_keyring_freshness_key_count(ring) > 0;
    char nonce[33] = "";
    if (freshness) {
        uint8_t raw[16];
        esp_fill_random(raw, sizeof raw);
        for (size_t i = 0; i < sizeof raw; i++) {
            snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
        }
    }
    /* type and id are §5 names (A-Z a-z 0-9 . _ -): nothing in them needs URL encoding */
    int n = snprintf(url, POLL_URL_MAX, "%s/update/newest/manifest?deviceType=%s&deviceId=%s%s%s",
                     cfg->server_url, cfg->device_type, id, freshness ? "&nonce=" : "", nonce);
    ESP_GOTO_ON_FALSE(n > 0 && n < POLL_URL_MAX, ESP_ERR_INVALID_SIZE, done, TAG, "poll URL");
    so_judged_t last;
    bool have_judged = secure_ota_nvs_judged(&last);
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
        ret = judge_none(cfg, ring, headers, nonce, id, have_judged ? &last : NULL, out);
        goto done;
    }
    if (status == 304 && have_judged) {
        ret = judge_unchanged(cfg, ring, headers, nonce, id, &last, out);
        goto done;
    }
    ESP_GOTO_ON_FALSE(status == 200, SECURE_OTA_ERR_UNEXPECTED_STATUS, done, TAG,
                      "manifest: HTTP %d", status);
    ret = judge_manifest(cfg, ring, &body, headers, nonce, id, out);
done:
    if (ret != ESP_OK && !out->verdict && secure_ota_err_is_reason(ret)) {
        out->verdict = ret;
    }
    if (!out->available) {
        out->have_claims = out->have_claims && out->verdict != ESP_OK;
    }
    /* a release refused (not a transport failure, not "already installed") is reported */
    int reason = secure_ota_err_is_reason(out->verdict) ? out->verdict - SECURE_OTA_ERR_BASE : 0;
    if (reason > 0 && reason < SO_REASON_CONNECTION_FAILED &&
        reason != SO_REASON_ALREADY_INSTALLED) {
        secure_ota_report(cfg, SO_EVENT_REJECTED, reason,
                          out->have_claims ? out->claims.seq : 0, NULL);
    }
    so_keyring_free(ring);
    free(url);
    free(headers);
    free(body.buf);
    return ret;
}
