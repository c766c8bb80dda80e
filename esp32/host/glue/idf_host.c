/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Host replacements of the few ESP-IDF functions the component's report path calls, so that
 * the glue (secure_ota_report.c, the POST of secure_ota_http.c, secure_ota_nvs.c) runs on
 * Linux against the real update server. They are not ESP-IDF: what a run proves is the glue's
 * own logic (key and counter in NVS, pending report, order of delivery) and its requests.
 *
 *  - NVS: a table of typed entries kept in the file $SO_HOST_NVS (rewritten at nvs_commit, read
 *    at the first nvs_open), so that successive runs of one process are successive boots;
 *  - esp_http_client: HTTP/1.1 over mbedTLS 2.28 TLS (the CA given in the config, the host name
 *    verified), enough for one request per client with a Content-Length body; no redirects, no
 *    chunked bodies;
 *  - the MAC ($SO_HOST_MAC, 12 hex digits; default 7cdfa1e2f3a4), the app version
 *    ($SO_HOST_APP_VERSION; default 1.0.0), the secure_version eFuse ($SO_HOST_SECURE_VERSION),
 *    esp_fill_random (getrandom), esp_timer_get_time (CLOCK_MONOTONIC);
 *  - for the check (secure_ota_check.c): the next OTA slot, a partition record only (its size
 *    $SO_HOST_SLOT_SIZE, default 1.875 MiB; nothing is ever written to it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "esp_app_desc.h"
#include "esp_efuse.h"
#include "esp_err.h"
#include "esp_http_client.h"
#include "esp_mac.h"
#include "esp_ota_ops.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/entropy.h"
#include "mbedtls/net_sockets.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509_crt.h"
#include "nvs.h"

#define NVS_INVALID_LENGTH (ESP_ERR_NVS_BASE + 0x0c)
#define NVS_TYPE_MISMATCH (ESP_ERR_NVS_BASE + 0x05)
#define NVS_INVALID_HANDLE (ESP_ERR_NVS_BASE + 0x07)

/* ---- small things ------------------------------------------------------------------------- */

const char *esp_err_to_name(esp_err_t code)
{
    static char text[32];
    switch (code) {
    case ESP_OK: return "ESP_OK";
    case ESP_FAIL: return "ESP_FAIL";
    case ESP_ERR_NO_MEM: return "ESP_ERR_NO_MEM";
    case ESP_ERR_INVALID_ARG: return "ESP_ERR_INVALID_ARG";
    case ESP_ERR_INVALID_STATE: return "ESP_ERR_INVALID_STATE";
    case ESP_ERR_INVALID_SIZE: return "ESP_ERR_INVALID_SIZE";
    case ESP_ERR_TIMEOUT: return "ESP_ERR_TIMEOUT";
    case ESP_ERR_NVS_NOT_FOUND: return "ESP_ERR_NVS_NOT_FOUND";
    default: snprintf(text, sizeof text, "ESP_ERR_0x%x", (unsigned)code); return text;
    }
}

void esp_fill_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            abort();
        }
        p += n;
        len -= (size_t)n;
    }
}

uint32_t esp_random(void)
{
    uint32_t v;
    esp_fill_random(&v, sizeof v);
    return v;
}

int64_t esp_timer_get_time(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

esp_err_t esp_read_mac(uint8_t *mac, esp_mac_type_t type)
{
    if (!mac || type != ESP_MAC_BASE) {
        return ESP_ERR_INVALID_ARG;
    }
    const char *hex = getenv("SO_HOST_MAC");
    if (!hex) {
        hex = "7cdfa1e2f3a4";
    }
    for (int i = 0; i < 6; i++) {
        unsigned v = 0;
        if (strlen(hex) != 12 || sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return ESP_ERR_INVALID_ARG;
        }
        mac[i] = (uint8_t)v;
    }
    return ESP_OK;
}

const esp_app_desc_t *esp_app_get_description(void)
{
    static esp_app_desc_t desc;
    const char *version = getenv("SO_HOST_APP_VERSION");
    snprintf(desc.version, sizeof desc.version, "%s", version ? version : "1.0.0");
    return &desc;
}

uint32_t esp_efuse_read_secure_version(void)
{
    const char *v = getenv("SO_HOST_SECURE_VERSION");
    return v ? (uint32_t)strtoul(v, NULL, 10) : 0;
}

const esp_partition_t *esp_ota_get_next_update_partition(const esp_partition_t *start_from)
{
    (void)start_from;
    static esp_partition_t slot = {.label = "ota_1", .address = 0x210000};
    const char *size = getenv("SO_HOST_SLOT_SIZE");
    slot.size = size ? (uint32_t)strtoul(size, NULL, 10) : 0x1E0000;
    return &slot;
}

/* ---- NVS ---------------------------------------------------------------------------------- */

enum { T_U32 = 1, T_U64, T_BLOB, T_STR };
#define MAX_ENTRIES 64
#define MAX_VALUE 4096

typedef struct {
    char ns[16];
    char key[16];
    int type;
    size_t len;
    uint8_t data[MAX_VALUE];
} entry_t;

static entry_t *entries;
static size_t entry_count;
static bool loaded;
static char open_ns[8][16];

static const char *nvs_file(void)
{
    const char *path = getenv("SO_HOST_NVS");
    if (!path) {
        fprintf(stderr, "idf_host: SO_HOST_NVS is not set\n");
        abort();
    }
    return path;
}

/* File: one entry per line, "ns key type hex". */
static void nvs_load(void)
{
    if (loaded) {
        return;
    }
    loaded = true;
    entries = calloc(MAX_ENTRIES, sizeof *entries);
    if (!entries) {
        abort();
    }
    FILE *f = fopen(nvs_file(), "r");
    if (!f) {
        return;
    }
    char ns[16], key[16], *hex = malloc(2 * MAX_VALUE + 2);
    int type;
    while (entry_count < MAX_ENTRIES &&
           fscanf(f, "%15s %15s %d %8193s", ns, key, &type, hex) == 4) {
        entry_t *e = &entries[entry_count++];
        snprintf(e->ns, sizeof e->ns, "%s", ns);
        snprintf(e->key, sizeof e->key, "%s", key);
        e->type = type;
        e->len = strcmp(hex, "-") ? strlen(hex) / 2 : 0;
        for (size_t i = 0; i < e->len && i < MAX_VALUE; i++) {
            unsigned v = 0;
            sscanf(hex + 2 * i, "%2x", &v);
            e->data[i] = (uint8_t)v;
        }
    }
    free(hex);
    fclose(f);
}

static esp_err_t nvs_save(void)
{
    FILE *f = fopen(nvs_file(), "w");
    if (!f) {
        return ESP_FAIL;
    }
    for (size_t i = 0; i < entry_count; i++) {
        entry_t *e = &entries[i];
        fprintf(f, "%s %s %d ", e->ns, e->key, e->type);
        if (e->len == 0) {
            fputc('-', f);
        }
        for (size_t k = 0; k < e->len; k++) {
            fprintf(f, "%02x", e->data[k]);
        }
        fputc('\n', f);
    }
    return fclose(f) == 0 ? ESP_OK : ESP_FAIL;
}

static entry_t *find(nvs_handle_t h, const char *key)
{
    for (size_t i = 0; i < entry_count; i++) {
        if (!strcmp(entries[i].ns, open_ns[h]) && !strcmp(entries[i].key, key)) {
            return &entries[i];
        }
    }
    return NULL;
}

esp_err_t nvs_open(const char *name, nvs_open_mode_t mode, nvs_handle_t *out)
{
    nvs_load();
    bool exists = false;
    for (size_t i = 0; i < entry_count; i++) {
        exists = exists || !strcmp(entries[i].ns, name);
    }
    if (!exists && mode == NVS_READONLY) {
        return ESP_ERR_NVS_NOT_FOUND;
    }
    for (nvs_handle_t h = 1; h < 8; h++) {
        if (!open_ns[h][0]) {
            snprintf(open_ns[h], sizeof open_ns[h], "%s", name);
            *out = h;
            return ESP_OK;
        }
    }
    return ESP_FAIL;
}

void nvs_close(nvs_handle_t h)
{
    if (h > 0 && h < 8) {
        open_ns[h][0] = '\0';
    }
}

esp_err_t nvs_commit(nvs_handle_t h)
{
    return h > 0 && h < 8 && open_ns[h][0] ? nvs_save() : NVS_INVALID_HANDLE;
}

static esp_err_t set(nvs_handle_t h, const char *key, int type, const void *value, size_t len)
{
    if (!(h > 0 && h < 8 && open_ns[h][0]) || strlen(key) > 15 || len > MAX_VALUE) {
        return ESP_ERR_INVALID_ARG;
    }
    entry_t *e = find(h, key);
    if (!e) {
        if (entry_count == MAX_ENTRIES) {
            return ESP_FAIL;
        }
        e = &entries[entry_count++];
        snprintf(e->ns, sizeof e->ns, "%s", open_ns[h]);
        snprintf(e->key, sizeof e->key, "%s", key);
    }
    e->type = type;
    e->len = len;
    memcpy(e->data, value, len);
    return ESP_OK;
}

static esp_err_t get(nvs_handle_t h, const char *key, int type, void *out, size_t *len)
{
    if (!(h > 0 && h < 8 && open_ns[h][0])) {
        return NVS_INVALID_HANDLE;
    }
    entry_t *e = find(h, key);
    if (!e) {
        return ESP_ERR_NVS_NOT_FOUND;
    }
    if (e->type != type) {
        return NVS_TYPE_MISMATCH;
    }
    if (!out) {
        *len = e->len;
        return ESP_OK;
    }
    if (*len < e->len) {
        return NVS_INVALID_LENGTH;
    }
    memcpy(out, e->data, e->len);
    *len = e->len;
    return ESP_OK;
}

esp_err_t nvs_set_u32(nvs_handle_t h, const char *key, uint32_t value)
{
    return set(h, key, T_U32, &value, sizeof value);
}

esp_err_t nvs_get_u32(nvs_handle_t h, const char *key, uint32_t *out)
{
    size_t len = sizeof *out;
    return get(h, key, T_U32, out, &len);
}

esp_err_t nvs_set_u64(nvs_handle_t h, const char *key, uint64_t value)
{
    return set(h, key, T_U64, &value, sizeof value);
}

esp_err_t nvs_get_u64(nvs_handle_t h, const char *key, uint64_t *out)
{
    size_t len = sizeof *out;
    return get(h, key, T_U64, out, &len);
}

esp_err_t nvs_set_blob(nvs_handle_t h, const char *key, const void *value, size_t len)
{
    return set(h, key, T_BLOB, value, len);
}

esp_err_t nvs_get_blob(nvs_handle_t h, const char *key, void *out, size_t *len)
{
    return get(h, key, T_BLOB, out, len);
}

esp_err_t nvs_set_str(nvs_handle_t h, const char *key, const char *value)
{
    return set(h, key, T_STR, value, strlen(value) + 1);
}

esp_err_t nvs_get_str(nvs_handle_t h, const char *key, char *out, size_t *len)
{
    return get(h, key, T_STR, out, len);
}

esp_err_t nvs_erase_key(nvs_handle_t h, const char *key)
{
    if (!(h > 0 && h < 8 && open_ns[h][0])) {
        return NVS_INVALID_HANDLE;
    }
    entry_t *e = find(h, key);
    if (!e) {
        return ESP_ERR_NVS_NOT_FOUND;
    }
    *e = entries[--entry_count];
    return ESP_OK;
}

/* ---- esp_http_client over mbedTLS ------------------------------------------------------------ */

#define MAX_HEADERS 16
#define HEAD_MAX 16384

struct esp_http_client {
    esp_http_client_config_t cfg;
    char host[256];
    char port[8];
    char path[512];
    bool tls;
    esp_http_client_method_t method;
    char *names[MAX_HEADERS];
    char *values[MAX_HEADERS];
    int timeout_ms;
    bool connected;
    mbedtls_net_context net;
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    int status;
    int64_t content_length;
    int64_t body_read;
    char *head;       /* bytes received: the head, then the start of the body */
    size_t head_len;  /* bytes in `head` */
    size_t body_at;   /* where the body starts in `head` */
};

static bool parse_url(esp_http_client_handle_t c, const char *url)
{
    const char *rest;
    if (!strncmp(url, "https://", 8)) {
        c->tls = true;
        rest = url + 8;
    } else if (!strncmp(url, "http://", 7)) {
        rest = url + 7;
    } else {
        return false;
    }
    size_t host_len = strcspn(rest, ":/");
    if (host_len == 0 || host_len >= sizeof c->host) {
        return false;
    }
    memcpy(c->host, rest, host_len);
    c->host[host_len] = '\0';
    rest += host_len;
    snprintf(c->port, sizeof c->port, "%s", c->tls ? "443" : "80");
    if (*rest == ':') {
        size_t n = strcspn(rest + 1, "/");
        if (n == 0 || n >= sizeof c->port) {
            return false;
        }
        memcpy(c->port, rest + 1, n);
        c->port[n] = '\0';
        rest += 1 + n;
    }
    snprintf(c->path, sizeof c->path, "%s", *rest ? rest : "/");
    return true;
}

esp_http_client_handle_t esp_http_client_init(const esp_http_client_config_t *config)
{
    esp_http_client_handle_t c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->cfg = *config;
    c->timeout_ms = config->timeout_ms ? config->timeout_ms : 5000;
    mbedtls_net_init(&c->net);
    mbedtls_ssl_init(&c->ssl);
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    if (!parse_url(c, config->url)) {
        esp_http_client_cleanup(c);
        return NULL;
    }
    return c;
}

esp_err_t esp_http_client_set_method(esp_http_client_handle_t c, esp_http_client_method_t method)
{
    c->method = method;
    return ESP_OK;
}

esp_err_t esp_http_client_set_header(esp_http_client_handle_t c, const char *key,
                                     const char *value)
{
    esp_http_client_delete_header(c, key);
    for (int i = 0; i < MAX_HEADERS; i++) {
        if (!c->names[i]) {
            c->names[i] = strdup(key);
            c->values[i] = strdup(value);
            return c->names[i] && c->values[i] ? ESP_OK : ESP_ERR_NO_MEM;
        }
    }
    return ESP_ERR_NO_MEM;
}

esp_err_t esp_http_client_delete_header(esp_http_client_handle_t c, const char *key)
{
    for (int i = 0; i < MAX_HEADERS; i++) {
        if (c->names[i] && !strcasecmp(c->names[i], key)) {
            free(c->names[i]);
            free(c->values[i]);
            c->names[i] = c->values[i] = NULL;
        }
    }
    return ESP_OK;
}

esp_err_t esp_http_client_set_timeout_ms(esp_http_client_handle_t c, int timeout_ms)
{
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    mbedtls_ssl_conf_read_timeout(&c->conf, (uint32_t)c->timeout_ms);
    return ESP_OK;
}

esp_err_t esp_http_client_set_redirection(esp_http_client_handle_t c)
{
    (void)c;
    return ESP_ERR_NOT_SUPPORTED; /* the report path follows none */
}

static int send_all(esp_http_client_handle_t c, const char *data, size_t len)
{
    while (len) {
        int n = c->tls ? mbedtls_ssl_write(&c->ssl, (const unsigned char *)data, len)
                       : mbedtls_net_send(&c->net, (const unsigned char *)data, len);
        if (n == MBEDTLS_ERR_SSL_WANT_WRITE || n == MBEDTLS_ERR_SSL_WANT_READ) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int recv_some(esp_http_client_handle_t c, char *buf, size_t cap)
{
    int n = c->tls ? mbedtls_ssl_read(&c->ssl, (unsigned char *)buf, cap)
                   : mbedtls_net_recv_timeout(&c->net, (unsigned char *)buf, cap,
                                              (uint32_t)c->timeout_ms);
    if (n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        return 0;
    }
    return n;
}

esp_err_t esp_http_client_open(esp_http_client_handle_t c, int write_len)
{
    if (mbedtls_net_connect(&c->net, c->host, c->port, MBEDTLS_NET_PROTO_TCP) != 0) {
        return ESP_FAIL;
    }
    c->connected = true;
    if (c->tls) {
        static const char pers[] = "secure_ota host";
        if (!c->cfg.cert_pem ||
            mbedtls_x509_crt_parse(&c->ca, (const unsigned char *)c->cfg.cert_pem,
                                   c->cfg.cert_len ? c->cfg.cert_len
                                                   : strlen(c->cfg.cert_pem) + 1) != 0 ||
            mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                                  (const unsigned char *)pers, sizeof pers) != 0 ||
            mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
                                        MBEDTLS_SSL_TRANSPORT_STREAM,
                                        MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
            return ESP_FAIL;
        }
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
        mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
        mbedtls_ssl_conf_read_timeout(&c->conf, (uint32_t)c->timeout_ms);
        if (mbedtls_ssl_setup(&c->ssl, &c->conf) != 0 ||
            mbedtls_ssl_set_hostname(&c->ssl, c->host) != 0) {
            return ESP_FAIL;
        }
        mbedtls_ssl_set_bio(&c->ssl, &c->net, mbedtls_net_send, NULL, mbedtls_net_recv_timeout);
        int ret;
        while ((ret = mbedtls_ssl_handshake(&c->ssl)) != 0) {
            if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) {
                return ESP_FAIL; /* includes a certificate or name that does not verify */
            }
        }
    }
    static const char *const METHODS[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};
    char *req = malloc(HEAD_MAX);
    if (!req) {
        return ESP_ERR_NO_MEM;
    }
    int n = snprintf(req, HEAD_MAX, "%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n",
                     METHODS[c->method], c->path, c->host, c->port);
    for (int i = 0; i < MAX_HEADERS && n > 0 && n < HEAD_MAX; i++) {
        if (c->names[i]) {
            n += snprintf(req + n, HEAD_MAX - (size_t)n, "%s: %s\r\n", c->names[i], c->values[i]);
        }
    }
    if (n > 0 && n < HEAD_MAX && (write_len > 0 || c->method == HTTP_METHOD_POST)) {
        n += snprintf(req + n, HEAD_MAX - (size_t)n, "Content-Length: %d\r\n", write_len);
    }
    if (n > 0 && n < HEAD_MAX) {
        n += snprintf(req + n, HEAD_MAX - (size_t)n, "\r\n");
    }
    int ret = (n > 0 && n < HEAD_MAX && send_all(c, req, (size_t)n) == 0) ? ESP_OK : ESP_FAIL;
    free(req);
    return ret;
}

int esp_http_client_write(esp_http_client_handle_t c, const char *buffer, int len)
{
    return len >= 0 && send_all(c, buffer, (size_t)len) == 0 ? len : -1;
}

int64_t esp_http_client_fetch_headers(esp_http_client_handle_t c)
{
    c->head = malloc(HEAD_MAX + 1);
    if (!c->head) {
        return ESP_FAIL;
    }
    char *end = NULL;
    while (!end) {
        if (c->head_len == HEAD_MAX) {
            return ESP_FAIL;
        }
        int n = recv_some(c, c->head + c->head_len, HEAD_MAX - c->head_len);
        if (n <= 0) {
            return ESP_FAIL;
        }
        c->head_len += (size_t)n;
        c->head[c->head_len] = '\0';
        end = strstr(c->head, "\r\n\r\n");
    }
    c->body_at = (size_t)(end - c->head) + 4;
    if (sscanf(c->head, "HTTP/1.%*c %d", &c->status) != 1) {
        return ESP_FAIL;
    }
    c->content_length = -1;
    /* each header line: the event handler sees it, as esp_http_client's does */
    char *line = strstr(c->head, "\r\n") + 2;
    while (line < end) {
        char *eol = strstr(line, "\r\n");
        *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            char *value = colon + 1;
            while (*value == ' ') {
                value++;
            }
            if (!strcasecmp(line, "Content-Length")) {
                c->content_length = strtoll(value, NULL, 10);
            }
            if (c->cfg.event_handler) {
                esp_http_client_event_t evt = {.event_id = HTTP_EVENT_ON_HEADER, .client = c,
                                               .user_data = c->cfg.user_data, .header_key = line,
                                               .header_value = value};
                c->cfg.event_handler(&evt);
            }
        }
        line = eol + 2;
    }
    return c->content_length;
}

bool esp_http_client_is_chunked_response(esp_http_client_handle_t c)
{
    (void)c;
    return false;
}

int esp_http_client_read(esp_http_client_handle_t c, char *buffer, int len)
{
    if (len <= 0 || (c->content_length >= 0 && c->body_read >= c->content_length)) {
        return 0;
    }
    if (c->content_length >= 0 && len > c->content_length - c->body_read) {
        len = (int)(c->content_length - c->body_read);
    }
    int n;
    if (c->body_at < c->head_len) {
        n = (int)(c->head_len - c->body_at) < len ? (int)(c->head_len - c->body_at) : len;
        memcpy(buffer, c->head + c->body_at, (size_t)n);
        c->body_at += (size_t)n;
    } else {
        n = recv_some(c, buffer, (size_t)len);
        if (n < 0) {
            return -1;
        }
    }
    c->body_read += n;
    return n;
}

int esp_http_client_get_status_code(esp_http_client_handle_t c)
{
    return c->status;
}

bool esp_http_client_is_complete_data_received(esp_http_client_handle_t c)
{
    return c->content_length < 0 || c->body_read == c->content_length;
}

esp_err_t esp_http_client_close(esp_http_client_handle_t c)
{
    if (c->connected) {
        if (c->tls) {
            mbedtls_ssl_close_notify(&c->ssl);
        }
        mbedtls_net_free(&c->net);
        c->connected = false;
    }
    return ESP_OK;
}

esp_err_t esp_http_client_cleanup(esp_http_client_handle_t c)
{
    if (!c) {
        return ESP_OK;
    }
    esp_http_client_close(c);
    for (int i = 0; i < MAX_HEADERS; i++) {
        free(c->names[i]);
        free(c->values[i]);
    }
    mbedtls_ssl_free(&c->ssl);
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    free(c->head);
    free(c);
    return ESP_OK;
}
