/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Internals shared by the ESP-IDF glue files (not a public API). The files, each using only
 * those listed before it: secure_ota_err.c, secure_ota_nvs.c, secure_ota_config.c,
 * secure_ota_http.c, secure_ota_report.c, secure_ota_resume.c, secure_ota_check.c,
 * secure_ota_update.c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "esp_http_client.h"
#include "secure_ota_esp32.h"

#define SECURE_OTA_NVS_NAMESPACE "secure_ota"
#define SECURE_OTA_URL_MAX 512

/* ---- HTTP (secure_ota_http.c) ------------------------------------------------------------- */

/** Response headers we care about, captured by the HTTP event handler (bounded copies). */
typedef struct {
    char release[16];        /* X-Fota-Release */
    char etag[72];           /* ETag, quotes stripped */
    char freshness[SO_MAX_STATEMENT_SIZE + 1]; /* X-Fota-Freshness */
    bool freshness_truncated;
    char content_range[64];
    char content_encoding[32]; /* Content-Encoding (refused unless identity) */
    bool content_encoding_truncated;
    char location[SECURE_OTA_URL_MAX]; /* Location of a redirect */
    bool location_truncated;
} secure_ota_headers_t;

/** The Authorization header value for cfg->device_token into `out` (SO_AUTH_HEADER_MAX bytes):
 * ESP_OK with "" when there is no token, ESP_ERR_INVALID_ARG for an ill-formed one. */
esp_err_t secure_ota_auth_header(const secure_ota_config_t *cfg, char *out, size_t cap);

/** Receives body bytes; returns ESP_OK to continue. */
typedef esp_err_t (*secure_ota_sink_t)(void *ctx, const uint8_t *data, size_t len);

typedef struct {
    const char *url;
    const char *range;            /* "bytes=a-b" or NULL */
    const char *if_none_match;    /* hex SHA-256 or NULL */
    size_t max_body;              /* refuse longer bodies (0: no limit) */
    size_t expected;              /* bytes expected, for the slow-retrieval deadline (0: max_body) */
    secure_ota_sink_t sink;
    void *sink_ctx;
} secure_ota_request_t;

/**
 * Slow-retrieval deadline (esp_timer microseconds) of a transfer of `size` bytes started now:
 * one HTTP timeout plus `size` / CONFIG_SECURE_OTA_MIN_RATE seconds.
 */
int64_t secure_ota_deadline(const secure_ota_config_t *cfg, size_t size);

/**
 * One GET with the component's TLS policy (pinned CA, hostname verified, no redirects to
 * other hosts). `*status` gets the HTTP status; the body goes to the sink for 200 and 206 only.
 */
esp_err_t secure_ota_http_get(const secure_ota_config_t *cfg, const secure_ota_request_t *req,
                              secure_ota_headers_t *headers, int *status, size_t *body_len);

/**
 * One POST of `body` (`len` bytes, Content-Type `content_type`) with the same TLS policy and
 * Authorization header as secure_ota_http_get, no redirect followed, within one HTTP timeout
 * (cfg->timeout_ms) for the whole request. The response body is not read. `*status` gets the
 * HTTP status (a redirect's too).
 */
esp_err_t secure_ota_http_post(const secure_ota_config_t *cfg, const char *url,
                               const char *content_type, const char *body, size_t len,
                               int *status);

/* ---- errors and metrics (secure_ota_err.c) ----------------------------------------------- */

/** Map a core result (0, reason > 0, error < 0) to esp_err_t. */
esp_err_t secure_ota_err_from_core(int result);

/** Log "metrics NAME=VALUE" when CONFIG_SECURE_OTA_LOG_METRICS is on (for measurements). */
void secure_ota_log_metric(const char *name, int64_t value);

/* ---- configuration and keys (secure_ota_config.c) ----------------------------------------- */

/** ESP_OK for a usable configuration (server, device type, CA), else ESP_ERR_INVALID_ARG. */
esp_err_t secure_ota_check_config(const secure_ota_config_t *cfg);

/** A key ring from the config and the key set stored in NVS; free with so_keyring_free. */
esp_err_t secure_ota_keyring(const secure_ota_config_t *cfg, so_keyring_t **ring);

/* ---- state in NVS (secure_ota_nvs.c; secure_ota_get_installed_seq is public) -------------- */

/** Record release `seq`, written to the slot at `partition_address`, as pending. */
esp_err_t secure_ota_nvs_set_pending(uint32_t seq, uint32_t partition_address);

/** The pending release (0: none) and its slot's address. */
esp_err_t secure_ota_nvs_get_pending(uint32_t *seq, uint32_t *partition_address);

/**
 * Close the pending release `seq`: when it `booted` (its slot is the one running, self-test
 * passed) it becomes the installed one and the key set staged for it the device's; in every
 * case the pending release and the staged key set are forgotten.
 */
esp_err_t secure_ota_nvs_finish_pending(uint32_t seq, bool booted);

/** The record of the last manifest judged not an update; false if there is none. */
bool secure_ota_nvs_judged(so_judged_t *judged);

/** Keep `judged` for the next poll's If-None-Match (best effort: a failure is not reported). */
void secure_ota_nvs_remember_judged(const so_judged_t *judged);

/** Forget the judged record (best effort): the next poll sends no If-None-Match. */
void secure_ota_nvs_forget_judged(void);

/** Replace the ring's manifest-signing keys by the stored set if that one is newer (§4.4). */
void secure_ota_nvs_load_keyset(so_keyring_t *ring);

/** The NVS key of the device's bearer token (a string in SECURE_OTA_NVS_NAMESPACE). */
#define SECURE_OTA_NVS_TOKEN "fota_token"
/** The token stored in NVS into `buf` (true), or false when there is none or it does not fit. */
bool secure_ota_nvs_token(char *buf, size_t cap);

/** Stage `set`, reached by the rotations of release `seq`'s manifest, until it is confirmed. */
esp_err_t secure_ota_nvs_stage_keyset(const so_keyset_t *set, uint32_t seq);

/* ---- device reports (secure_ota_report.c; secure_ota_device_id is public) ------------------ */

/**
 * Sign one report (docs/formats.md §11) of `event` about release `release` (0: none), with
 * `reason` (0 or an so_reason_t) and `detail` (NULL, or any text: what is not printable ASCII
 * becomes '?', what is beyond SO_MAX_REPORT_DETAIL is cut), and send it after the pending one.
 * Best effort, never an error for the caller: a report that cannot be sent replaces the
 * pending one in NVS. Does nothing without CONFIG_SECURE_OTA_REPORTS.
 */
void secure_ota_report(const secure_ota_config_t *cfg, so_event_t event, int reason,
                       uint32_t release, const char *detail);

/**
 * Remember that `event` (confirmed or rolled_back) happened to release `release`, for the next
 * check to report (secure_ota_mark_running_valid() has no configuration to send with). Best
 * effort; nothing without CONFIG_SECURE_OTA_REPORTS.
 */
void secure_ota_report_later(so_event_t event, uint32_t release);

/** At the start of a check: send the pending report, then report what was remembered. */
void secure_ota_report_flush(const secure_ota_config_t *cfg);

/* ---- the resumable download (secure_ota_resume.c) ------------------------------------------ */

/** Download, decrypt and check release `claims` into the next OTA slot by Range requests. */
esp_err_t secure_ota_resumable_update(const secure_ota_config_t *cfg, const so_keyring_t *ring,
                                      const so_claims_t *claims, const char *url);
