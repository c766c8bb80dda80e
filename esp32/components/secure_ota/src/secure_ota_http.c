/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * HTTP GET with the component's TLS policy: the CA is pinned (cert_pem), the server's name is
 * verified (skip_cert_common_name_check is never set), plain HTTP only with the testing-only
 * Kconfig option, every status and length checked, bodies bounded. Requests ask for
 * `Accept-Encoding: identity` and a body with any other Content-Encoding is refused
 * (SECURE_OTA_ERR_UNSUPPORTED_ENCODING): nothing is inflated, so the bounds hold for what arrives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "esp_check.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "sdkconfig.h"
#include "secure_ota_priv.h"

static const char *TAG = "secure_ota";

typedef struct {
    secure_ota_headers_t *headers;
    int64_t deadline; /* esp_timer_get_time() by which the whole request must be done */
    int configured_ms; /* the configured read timeout */
} event_ctx_t;

/* What is left of the deadline as a read timeout: at least 1 ms, at most the configured one. */
static int timeout_left_ms(int64_t deadline, int configured_ms)
{
    int64_t left = (deadline - esp_timer_get_time()) / 1000;
    if (left < 1) {
        left = 1;
    }
    return left < configured_ms ? (int)left : configured_ms;
}

static void copy_header(char *dst, size_t cap, const char *value, bool *truncated)
{
    size_t n = strlen(value);
    if (n >= cap) {
        n = cap - 1;
        if (truncated) {
            *truncated = true;
        }
    }
    memcpy(dst, value, n);
    dst[n] = '\0';
}

static esp_err_t on_event(esp_http_client_event_t *evt)
{
    event_ctx_t *ctx = evt->user_data;
    if (evt->event_id != HTTP_EVENT_ON_HEADER || !ctx || !evt->header_key || !evt->header_value) {
        return ESP_OK;
    }
    /* A server dripping its head: esp_http_client bounds each read only (ESP-IDF < 5.5), so
     * every header line shrinks the read timeout to what is left of the request's deadline */
    esp_http_client_set_timeout_ms(evt->client, timeout_left_ms(ctx->deadline, ctx->configured_ms));
    secure_ota_headers_t *h = ctx->headers;
    if (!strcasecmp(evt->header_key, "X-Fota-Release")) {
        copy_header(h->release, sizeof h->release, evt->header_value, NULL);
    } else if (!strcasecmp(evt->header_key, "X-Fota-Freshness")) {
        copy_header(h->freshness, sizeof h->freshness, evt->header_value, &h->freshness_truncated);
    } else if (!strcasecmp(evt->header_key, "Location")) {
        copy_header(h->location, sizeof h->location, evt->header_value, &h->location_truncated);
    } else if (!strcasecmp(evt->header_key, "Content-Encoding")) {
        copy_header(h->content_encoding, sizeof h->content_encoding, evt->header_value,
                    &h->content_encoding_truncated);
    } else if (!strcasecmp(evt->header_key, "Content-Range")) {
        copy_header(h->content_range, sizeof h->content_range, evt->header_value, NULL);
    } else if (!strcasecmp(evt->header_key, "ETag")) {
        const char *v = evt->header_value;
        size_t n = strlen(v);
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
            v++;
            n -= 2;
        }
        if (n < sizeof h->etag) {
            memcpy(h->etag, v, n);
            h->etag[n] = '\0';
        }
    }
    return ESP_OK;
}

int64_t secure_ota_deadline(const secure_ota_config_t *cfg, size_t size)
{
    int timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : CONFIG_SECURE_OTA_HTTP_TIMEOUT_MS;
    return esp_timer_get_time() + (int64_t)timeout_ms * 1000 +
           (int64_t)size * 1000000 / CONFIG_SECURE_OTA_MIN_RATE;
}

/* The TLS policy every request has: the pinned CA, the name verified, no automatic redirect,
 * the configured TLS version; https:// only unless the testing-only option allows HTTP. */
static esp_err_t check_url(const secure_ota_config_t *cfg, const char *url)
{
#if !CONFIG_SECURE_OTA_ALLOW_HTTP
    ESP_RETURN_ON_FALSE(strncmp(url, "https://", 8) == 0, ESP_ERR_INVALID_ARG, TAG,
                        "refusing a non-HTTPS URL (CONFIG_SECURE_OTA_ALLOW_HTTP is off)");
#else
    ESP_LOGW(TAG, "CONFIG_SECURE_OTA_ALLOW_HTTP is on: plain HTTP is accepted (TESTING ONLY)");
#endif
    ESP_RETURN_ON_FALSE(cfg->ca_cert.pem, ESP_ERR_INVALID_ARG, TAG, "no CA certificate");
    return ESP_OK;
}

static void client_config(const secure_ota_config_t *cfg, const char *url, int timeout_ms,
                          esp_http_client_config_t *http)
{
    memset(http, 0, sizeof *http);
    http->url = url;
    http->cert_pem = cfg->ca_cert.pem;
    http->cert_len = cfg->ca_cert.len;
    http->timeout_ms = timeout_ms;
    http->disable_auto_redirect = true;
    http->keep_alive_enable = true;
#if CONFIG_SECURE_OTA_TLS_1_3_ONLY
    http->tls_version = ESP_HTTP_CLIENT_TLS_VER_TLS_1_3;
#elif CONFIG_SECURE_OTA_TLS_1_2_ONLY
    http->tls_version = ESP_HTTP_CLIENT_TLS_VER_TLS_1_2;
#endif
}

esp_err_t secure_ota_http_get(const secure_ota_config_t *cfg, const secure_ota_request_t *req,
                              secure_ota_headers_t *headers, int *status, size_t *body_len)
{
    ESP_RETURN_ON_FALSE(cfg && req && req->url && headers && status && body_len,
                        ESP_ERR_INVALID_ARG, TAG, "bad arguments");
    ESP_RETURN_ON_ERROR(check_url(cfg, req->url), TAG, "URL");
    memset(headers, 0, sizeof *headers);
    *status = 0;
    *body_len = 0;
    /* one deadline for the whole request, set before connecting: connection, TLS handshake,
     * response head and body (slow retrieval and a dripped head alike) */
    size_t expected = req->expected ? req->expected : req->max_body;
    const int64_t deadline = secure_ota_deadline(cfg, expected ? expected : SO_MAX_MANIFEST_SIZE);
    const int configured_ms = cfg->timeout_ms ? cfg->timeout_ms : CONFIG_SECURE_OTA_HTTP_TIMEOUT_MS;
    event_ctx_t ctx = {.headers = headers, .deadline = deadline, .configured_ms = configured_ms};
    esp_http_client_config_t http;
    client_config(cfg, req->url, timeout_left_ms(deadline, configured_ms), &http);
    http.event_handler = on_event;
    http.user_data = &ctx;
    esp_http_client_handle_t client = esp_http_client_init(&http);
    ESP_RETURN_ON_FALSE(client, ESP_ERR_NO_MEM, TAG, "esp_http_client_init failed");
    esp_err_t ret = ESP_OK;
    char *buf = NULL;
    ESP_GOTO_ON_ERROR(esp_http_client_set_header(client, "Accept-Encoding", "identity"), done, TAG,
                      "Accept-Encoding header");
    char auth[SO_AUTH_HEADER_MAX];
    ESP_GOTO_ON_ERROR(secure_ota_auth_header(cfg, auth, sizeof auth), done, TAG, "device token");
    if (auth[0]) {
        ESP_GOTO_ON_ERROR(esp_http_client_set_header(client, "Authorization", auth), done, TAG,
                          "Authorization header");
    }
    if (req->range) {
        ESP_GOTO_ON_ERROR(esp_http_client_set_header(client, "Range", req->range), done, TAG,
                          "Range header");
    }
    if (req->if_none_match) {
        char tag[72];
        snprintf(tag, sizeof tag, "\"%s\"", req->if_none_match);
        ESP_GOTO_ON_ERROR(esp_http_client_set_header(client, "If-None-Match", tag), done, TAG,
                          "If-None-Match header");
    }
    int64_t length = 0;
    /* Redirects (a presigned S3 download, a CDN) are followed here, not by esp_http_client
     * (disable_auto_redirect): at most SO_MAX_REDIRECTS, to https:// URLs without credentials
     * or to a path on the same server (so_redirect_ok), within the same deadline. The device's
     * token never follows a redirect to an absolute URL (another origin, as a presigned S3 URL
     * is): Authorization is deleted first. What arrives is verified as ever. */
    for (unsigned hops = 0;; hops++) {
        ESP_GOTO_ON_ERROR(esp_http_client_open(client, 0), done, TAG, "connect to %s", req->url);
        length = esp_http_client_fetch_headers(client);
        ESP_GOTO_ON_FALSE(esp_timer_get_time() < deadline, ESP_ERR_TIMEOUT, done, TAG,
                          "response head too slow: past the request's deadline");
        *status = esp_http_client_get_status_code(client);
        if (*status != 301 && *status != 302 && *status != 303 && *status != 307 &&
            *status != 308) {
            break;
        }
        ESP_GOTO_ON_FALSE(hops < SO_MAX_REDIRECTS && !headers->location_truncated &&
                              so_redirect_ok(headers->location) == SO_OK,
                          SECURE_OTA_ERR_REDIRECT_REFUSED, done, TAG,
                          "refusing redirect %u to %s", hops + 1, headers->location);
        if (auth[0] && headers->location[0] != '/') {
            ESP_GOTO_ON_ERROR(esp_http_client_delete_header(client, "Authorization"), done, TAG,
                              "Authorization header");
            auth[0] = '\0';
        }
        ESP_GOTO_ON_ERROR(esp_http_client_set_redirection(client), done, TAG, "redirect");
        esp_http_client_close(client);
        memset(headers, 0, sizeof *headers); /* the next answer's headers only */
    }
    if (*status != 200 && *status != 206) {
        goto done; /* 304, 404 ... : the caller decides; no body is read */
    }
    ESP_GOTO_ON_FALSE(!headers->content_encoding_truncated &&
                          so_header_identity(headers->content_encoding) == SO_OK,
                      SECURE_OTA_ERR_UNSUPPORTED_ENCODING, done, TAG,
                      "refusing a %s body (asked for identity)", headers->content_encoding);
    ESP_GOTO_ON_FALSE(length >= 0 || esp_http_client_is_chunked_response(client),
                      SECURE_OTA_ERR_SERVER, done, TAG, "bad Content-Length");
    ESP_GOTO_ON_FALSE(!req->max_body || length <= (int64_t)req->max_body, SECURE_OTA_ERR_SERVER,
                      done, TAG, "body of %lld bytes is larger than %u", (long long)length,
                      (unsigned)req->max_body);
    /* slow retrieval: however the server trickles, the body ends by the same deadline; each
     * read waits at most what is left of it */
    esp_http_client_set_timeout_ms(client, timeout_left_ms(deadline, configured_ms));
    const size_t chunk = 2048;
    buf = malloc(chunk);
    ESP_GOTO_ON_FALSE(buf, ESP_ERR_NO_MEM, done, TAG, "no memory for the body buffer");
    for (;;) {
        ESP_GOTO_ON_FALSE(esp_timer_get_time() < deadline, ESP_ERR_TIMEOUT, done, TAG,
                          "too slow (slow retrieval): gave up after %u bytes",
                          (unsigned)*body_len);
        esp_http_client_set_timeout_ms(client, timeout_left_ms(deadline, configured_ms));
        int n = esp_http_client_read(client, buf, (int)chunk);
        if (n == -ESP_ERR_HTTP_EAGAIN) {
            continue; /* timed out before data: the deadline above bounds the retries */
        }
        ESP_GOTO_ON_FALSE(n >= 0, ESP_FAIL, done, TAG, "read failed (%d)", n);
        if (n == 0) {
            break;
        }
        *body_len += (size_t)n;
        ESP_GOTO_ON_FALSE(!req->max_body || *body_len <= req->max_body, SECURE_OTA_ERR_SERVER,
                          done, TAG, "body longer than %u bytes", (unsigned)req->max_body);
        if (req->sink) {
            ESP_GOTO_ON_ERROR(req->sink(req->sink_ctx, (const uint8_t *)buf, (size_t)n), done,
                              TAG, "body refused");
        }
    }
    ESP_GOTO_ON_FALSE(esp_http_client_is_complete_data_received(client), ESP_FAIL, done, TAG,
                      "connection closed before the end of the body");
    ESP_GOTO_ON_FALSE(length < 0 || (int64_t)*body_len == length, SECURE_OTA_ERR_SERVER, done,
                      TAG, "body length differs from Content-Length");
done:
    free(buf);
    esp_http_client_close(client);
    esp_http_client_cleanup(client);
    return ret;
}

esp_err_t secure_ota_http_post(const secure_ota_config_t *cfg, const char *url,
                               const char *content_type, const char *body, size_t len,
                               int *status)
{
    ESP_RETURN_ON_FALSE(cfg && url && content_type && body && status && len <= INT32_MAX,
                        ESP_ERR_INVALID_ARG, TAG, "bad arguments");
    *status = 0;
    ESP_RETURN_ON_ERROR(check_url(cfg, url), TAG, "URL");
    const int configured_ms = cfg->timeout_ms ? cfg->timeout_ms : CONFIG_SECURE_OTA_HTTP_TIMEOUT_MS;
    /* one timeout for the whole request: connection, TLS handshake, body, response head */
    const int64_t deadline = esp_timer_get_time() + (int64_t)configured_ms * 1000;
    esp_http_client_config_t http;
    client_config(cfg, url, configured_ms, &http);
    esp_http_client_handle_t client = esp_http_client_init(&http);
    ESP_RETURN_ON_FALSE(client, ESP_ERR_NO_MEM, TAG, "esp_http_client_init failed");
    esp_err_t ret = ESP_OK;
    char auth[SO_AUTH_HEADER_MAX];
    ESP_GOTO_ON_ERROR(esp_http_client_set_method(client, HTTP_METHOD_POST), done, TAG, "method");
    ESP_GOTO_ON_ERROR(esp_http_client_set_header(client, "Content-Type", content_type), done, TAG,
                      "Content-Type header");
    ESP_GOTO_ON_ERROR(secure_ota_auth_header(cfg, auth, sizeof auth), done, TAG, "device token");
    if (auth[0]) {
        ESP_GOTO_ON_ERROR(esp_http_client_set_header(client, "Authorization", auth), done, TAG,
                          "Authorization header");
    }
    ESP_GOTO_ON_ERROR(esp_http_client_open(client, (int)len), done, TAG, "connect to %s", url);
    esp_http_client_set_timeout_ms(client, timeout_left_ms(deadline, configured_ms));
    ESP_GOTO_ON_FALSE(esp_http_client_write(client, body, (int)len) == (int)len, ESP_FAIL, done,
                      TAG, "body not sent");
    esp_http_client_set_timeout_ms(client, timeout_left_ms(deadline, configured_ms));
    esp_http_client_fetch_headers(client);
    ESP_GOTO_ON_FALSE(esp_timer_get_time() < deadline, ESP_ERR_TIMEOUT, done, TAG,
                      "answer too slow");
    *status = esp_http_client_get_status_code(client);
done:
    esp_http_client_close(client);
    esp_http_client_cleanup(client);
    return ret;
}
