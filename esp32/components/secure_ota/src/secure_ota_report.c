/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Device reports (docs/formats.md §11) on the device: the device id, the report key (generated
 * on first use and kept in NVS), the counter (incremented and committed to NVS before each
 * signature), and delivery: POST {server_url}/api/v1/reports with the component's TLS policy and
 * token. Best effort throughout: nothing here fails or blocks an update for longer than one
 * HTTP timeout per report; the last report that could not be sent stays in NVS (one at most)
 * and goes out before the next one.
 *
 * NVS (namespace SECURE_OTA_NVS_NAMESPACE): "report_key" (blob, so_report_key_export),
 * "report_ctr" (u64, the last counter used), "report_pend" (string, the report token waiting
 * to be sent), "report_next" (u64, event << 32 | release: an outcome that
 * secure_ota_mark_running_valid() remembered for the next check to report).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_app_desc.h"
#include "esp_check.h"
#include "esp_efuse.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_random.h"
#include "nvs.h"
#include "sdkconfig.h"
#include "secure_ota_priv.h"

static const char *TAG = "secure_ota";

esp_err_t secure_ota_device_id(const secure_ota_config_t *cfg, char *out, size_t cap)
{
    ESP_RETURN_ON_FALSE(out && cap > 0, ESP_ERR_INVALID_ARG, TAG, "out is NULL");
    out[0] = '\0';
    const char *id = cfg ? cfg->device_id : NULL;
    static const char configured[] = CONFIG_SECURE_OTA_DEVICE_ID;
    if (!id && configured[0]) {
        id = configured;
    }
    char derived[SO_MAX_NAME_LENGTH + 1];
    if (!id) {
        uint8_t mac[6];
        ESP_RETURN_ON_ERROR(esp_read_mac(mac, ESP_MAC_BASE), TAG, "base MAC");
        /* the target is a lowercase name ("esp32c3"): the id is a §5 name of at most 22 */
        snprintf(derived, sizeof derived, "%s-%02x%02x%02x%02x%02x%02x", CONFIG_IDF_TARGET, mac[0],
                 mac[1], mac[2], mac[3], mac[4], mac[5]);
        id = derived;
    }
    ESP_RETURN_ON_FALSE(so_name_ok(id), ESP_ERR_INVALID_ARG, TAG,
                        "device id '%s' is not a valid name (1 to 64 of A-Z a-z 0-9 . _ -)", id);
    size_t n = strlen(id);
    ESP_RETURN_ON_FALSE(n < cap, ESP_ERR_INVALID_SIZE, TAG, "no room for the device id");
    memcpy(out, id, n + 1);
    return ESP_OK;
}

#if CONFIG_SECURE_OTA_REPORTS

#define NVS_REPORT_KEY "report_key"
#define NVS_REPORT_COUNTER "report_ctr"
#define NVS_REPORT_PENDING "report_pend"
#define NVS_REPORT_NEXT "report_next"
#define REPORT_PATH "/api/v1/reports"         /* secure_fota.wire.REPORTS under API_V1 */
#define REPORT_CONTENT_TYPE "application/jose" /* secure_fota.wire.REPORT_CONTENT_TYPE */

static int device_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    esp_fill_random(out, len);
    return 0;
}

static void wipe(void *p, size_t len)
{
    volatile uint8_t *v = p;
    while (len--) {
        *v++ = 0;
    }
}

/* `src` as printable ASCII: other bytes become '?', the rest beyond cap - 1 is cut. */
static void printable_copy(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; src && src[n] && n + 1 < cap; n++) {
        unsigned char c = (unsigned char)src[n];
        dst[n] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
    }
    dst[n] = '\0';
}

/* The key in NVS; on first use a new one, stored (and committed) before it signs anything: a
 * key the server registers must never be one the device forgets. NULL on any failure. */
static so_report_key_t *load_key(nvs_handle_t nvs)
{
    uint8_t blob[SO_REPORT_KEY_BLOB_SIZE];
    size_t len = sizeof blob;
    so_report_key_t *key = NULL;
    esp_err_t err = nvs_get_blob(nvs, NVS_REPORT_KEY, blob, &len);
    if (err == ESP_OK) {
        int r = so_report_key_load(blob, len, device_rng, NULL, &key);
        wipe(blob, sizeof blob);
        if (r != SO_OK) {
            /* not replaced: the server knows this device by its key (erase it to start anew) */
            ESP_LOGE(TAG, "report key in NVS unreadable (%d): no reports", r);
        }
        return key;
    }
    if (err != ESP_ERR_NVS_NOT_FOUND) {
        ESP_LOGE(TAG, "report key: %s: no reports", esp_err_to_name(err));
        return NULL;
    }
    if (so_report_key_generate(device_rng, NULL, &key) != SO_OK ||
        so_report_key_export(key, blob, sizeof blob, &len) != SO_OK) {
        ESP_LOGE(TAG, "report key: generation failed");
        so_report_key_free(key);
        return NULL;
    }
    err = nvs_set_blob(nvs, NVS_REPORT_KEY, blob, len);
    wipe(blob, sizeof blob);
    if (err == ESP_OK) {
        err = nvs_commit(nvs);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "report key not stored: %s", esp_err_to_name(err));
        so_report_key_free(key);
        return NULL;
    }
    char kid[65];
    so_report_key_kid(key, kid);
    ESP_LOGI(TAG, "report key generated (kid %s)", kid);
    return key;
}

/* The next counter value, committed to NVS before it is used (a power loss skips a value,
 * never reuses one). */
static esp_err_t next_counter(nvs_handle_t nvs, uint64_t *out)
{
    uint64_t counter = 0;
    esp_err_t err = nvs_get_u64(nvs, NVS_REPORT_COUNTER, &counter);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        counter = 0;
        err = ESP_OK;
    }
    ESP_RETURN_ON_ERROR(err, TAG, "report counter");
    ESP_RETURN_ON_FALSE(counter < SO_MAX_REPORT_COUNTER, ESP_ERR_INVALID_STATE, TAG,
                        "report counter exhausted");
    counter++;
    ESP_RETURN_ON_ERROR(nvs_set_u64(nvs, NVS_REPORT_COUNTER, counter), TAG, "report counter");
    ESP_RETURN_ON_ERROR(nvs_commit(nvs), TAG, "report counter");
    *out = counter;
    return ESP_OK;
}

/* POST one token: true when the server has it (2xx) or refused it for good (a 4xx other than
 * 401, 403, 408 and 429, e.g. 409 for a counter it has seen); false to try again later. */
static bool deliver(const secure_ota_config_t *cfg, const char *token)
{
    char *url = malloc(SECURE_OTA_URL_MAX); /* on the heap: the TLS handshake needs the stack */
    int n = url ? snprintf(url, SECURE_OTA_URL_MAX, "%s" REPORT_PATH, cfg->server_url) : -1;
    int status = 0;
    esp_err_t err = ESP_ERR_NO_MEM;
    if (n > 0 && (size_t)n < SECURE_OTA_URL_MAX) {
        err = secure_ota_http_post(cfg, url, REPORT_CONTENT_TYPE, token, strlen(token), &status);
    }
    free(url);
    if (err != ESP_OK || status < 200) {
        ESP_LOGW(TAG, "report not sent: %s", esp_err_to_name(err != ESP_OK ? err : ESP_FAIL));
        return false;
    }
    if (status < 300) {
        return true;
    }
    if (status >= 400 && status < 500 && status != 401 && status != 403 && status != 408 &&
        status != 429) {
        ESP_LOGW(TAG, "report refused by the server (HTTP %d): dropped", status);
        return true;
    }
    ESP_LOGW(TAG, "report not accepted now (HTTP %d)", status);
    return false;
}

/* Send the pending report, if any: true when there is none left (sent, dropped or none). */
static bool send_pending(const secure_ota_config_t *cfg, nvs_handle_t nvs, char *buf, size_t cap)
{
    size_t len = cap;
    esp_err_t err = nvs_get_str(nvs, NVS_REPORT_PENDING, buf, &len);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        return true;
    }
    if (err != ESP_OK || !deliver(cfg, buf)) {
        if (err != ESP_OK) {
            /* unreadable or longer than a report can be: not ours to send */
            ESP_LOGW(TAG, "pending report unreadable (%s): dropped", esp_err_to_name(err));
            nvs_erase_key(nvs, NVS_REPORT_PENDING);
            nvs_commit(nvs);
            return true;
        }
        return false;
    }
    nvs_erase_key(nvs, NVS_REPORT_PENDING);
    nvs_commit(nvs);
    return true;
}

void secure_ota_report(const secure_ota_config_t *cfg, so_event_t event, int reason,
                       uint32_t release, const char *detail)
{
    if (!cfg || !cfg->server_url || !cfg->device_type) {
        return;
    }
    char id[SO_MAX_NAME_LENGTH + 1], text[SO_MAX_REPORT_DETAIL + 1],
        version[SO_MAX_REPORT_VERSION + 1];
    if (secure_ota_device_id(cfg, id, sizeof id) != ESP_OK) {
        return; /* logged */
    }
    printable_copy(text, sizeof text, detail);
    const esp_app_desc_t *app = esp_app_get_description();
    printable_copy(version, sizeof version, app ? app->version : "");
    uint32_t running = 0;
    if (secure_ota_get_installed_seq(&running) != ESP_OK || running > SO_MAX_SEQ) {
        running = 0;
    }
    uint32_t secure_version = esp_efuse_read_secure_version();
    so_report_t report = {
        .device_id = id,
        .device_type = cfg->device_type,
        .event = event,
        .reason = reason,
        .detail = text,
        .seq = running,
        .secure_version = secure_version > SO_MAX_SECURE_VERSION ? SO_MAX_SECURE_VERSION
                                                                 : secure_version,
        .version = version,
        .release = release,
        .counter = 1, /* checked with a valid counter first: no value is spent on a bad report */
    };
    const char *field = NULL;
    if (so_report_check(&report, &field) != SO_OK) {
        ESP_LOGE(TAG, "report %s not made: %s out of bounds", so_event_name(event),
                 field ? field : "?");
        return;
    }
    char *token = malloc(SO_REPORT_TOKEN_MAX);
    char *pending = malloc(SO_REPORT_TOKEN_MAX);
    so_report_key_t *key = NULL;
    nvs_handle_t nvs;
    bool open = false;
    if (!token || !pending) {
        ESP_LOGW(TAG, "report %s: no memory", so_event_name(event));
        goto done;
    }
    if (nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READWRITE, &nvs) != ESP_OK) {
        ESP_LOGW(TAG, "report %s: NVS unavailable", so_event_name(event));
        goto done;
    }
    open = true;
    key = load_key(nvs);
    if (!key || next_counter(nvs, &report.counter) != ESP_OK) {
        goto done;
    }
    int r = so_report_sign(key, device_rng, NULL, &report, token, SO_REPORT_TOKEN_MAX, NULL);
    if (r != SO_OK) {
        ESP_LOGE(TAG, "report %s not signed (%d)", so_event_name(event), r);
        goto done;
    }
    /* the older report first (the server refuses a counter below one it has seen) */
    if (send_pending(cfg, nvs, pending, SO_REPORT_TOKEN_MAX) && deliver(cfg, token)) {
        ESP_LOGI(TAG, "reported %s (release %" PRIu32 ", counter %" PRIu64 ")",
                 so_event_name(event), release, report.counter);
        goto done;
    }
    /* kept for the next check; it replaces an older pending report (one at most) */
    if (nvs_set_str(nvs, NVS_REPORT_PENDING, token) == ESP_OK && nvs_commit(nvs) == ESP_OK) {
        ESP_LOGW(TAG, "report %s kept in NVS for the next check", so_event_name(event));
    }
done:
    if (open) {
        nvs_close(nvs);
    }
    so_report_key_free(key);
    free(token);
    free(pending);
}

void secure_ota_report_later(so_event_t event, uint32_t release)
{
    nvs_handle_t nvs;
    if (nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READWRITE, &nvs) != ESP_OK) {
        return;
    }
    if (nvs_set_u64(nvs, NVS_REPORT_NEXT, (uint64_t)event << 32 | release) == ESP_OK) {
        nvs_commit(nvs);
    }
    nvs_close(nvs);
}

void secure_ota_report_flush(const secure_ota_config_t *cfg)
{
    nvs_handle_t nvs;
    if (nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READWRITE, &nvs) != ESP_OK) {
        return;
    }
    uint64_t next = 0;
    bool have_next = nvs_get_u64(nvs, NVS_REPORT_NEXT, &next) == ESP_OK;
    if (!have_next) {
        char *pending = malloc(SO_REPORT_TOKEN_MAX);
        if (pending) {
            send_pending(cfg, nvs, pending, SO_REPORT_TOKEN_MAX);
        }
        free(pending);
        nvs_close(nvs);
        return;
    }
    so_event_t event = (so_event_t)(next >> 32);
    uint32_t release = (uint32_t)next;
    /* signed (and sent or kept pending) before the record goes: a power loss in between
     * reports the outcome twice, with two counters, rather than never */
    if (event == SO_EVENT_CONFIRMED) {
        secure_ota_report(cfg, event, 0, release, NULL);
    } else if (event == SO_EVENT_ROLLED_BACK) {
        secure_ota_report(cfg, event, 0, release, "the new image did not boot");
    }
    nvs_erase_key(nvs, NVS_REPORT_NEXT);
    nvs_commit(nvs);
    nvs_close(nvs);
}

#else /* !CONFIG_SECURE_OTA_REPORTS */

void secure_ota_report(const secure_ota_config_t *cfg, so_event_t event, int reason,
                       uint32_t release, const char *detail)
{
    (void)cfg;
    (void)event;
    (void)reason;
    (void)release;
    (void)detail;
}

void secure_ota_report_later(so_event_t event, uint32_t release)
{
    (void)event;
    (void)release;
}

void secure_ota_report_flush(const secure_ota_config_t *cfg)
{
    (void)cfg;
}

#endif
