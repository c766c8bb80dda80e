/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The caller's configuration: its Kconfig defaults, its validation, and the core's key ring it
 * gives (the embedded keys, replaced by a newer manifest-signing key set stored in NVS).
 */
#include <string.h>

#include "esp_check.h"
#include "esp_log.h"
#include "esp_random.h"
#include "sdkconfig.h"
#include "secure_ota_priv.h"
#if CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC
#include "esp_hmac.h"
#endif

static const char *TAG = "secure_ota";

/* the NVS token outlives the call (the config points at it); one updater per device */
static char s_nvs_token[SO_MAX_TOKEN_LENGTH + 1];

void secure_ota_config_from_kconfig(secure_ota_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    if (secure_ota_nvs_token(s_nvs_token, sizeof s_nvs_token)) {
        cfg->device_token = s_nvs_token;
    } else if (CONFIG_SECURE_OTA_DEVICE_TOKEN[0]) {
        cfg->device_token = CONFIG_SECURE_OTA_DEVICE_TOKEN;
    }
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

esp_err_t secure_ota_check_config(const secure_ota_config_t *cfg)
{
    ESP_RETURN_ON_FALSE(cfg && cfg->server_url && cfg->device_type && cfg->ca_cert.pem,
                        ESP_ERR_INVALID_ARG, TAG, "incomplete configuration");
    ESP_RETURN_ON_FALSE(so_name_ok(cfg->device_type), ESP_ERR_INVALID_ARG, TAG,
                        "device type '%s' is not a valid name", cfg->device_type);
    ESP_RETURN_ON_FALSE(strlen(cfg->server_url) < SECURE_OTA_URL_MAX - 128, ESP_ERR_INVALID_ARG,
                        TAG, "server URL too long");
    ESP_RETURN_ON_FALSE(!cfg->device_id || so_name_ok(cfg->device_id), ESP_ERR_INVALID_ARG, TAG,
                        "device id '%s' is not a valid name", cfg->device_id);
    char auth[SO_AUTH_HEADER_MAX];
    ESP_RETURN_ON_ERROR(secure_ota_auth_header(cfg, auth, sizeof auth), TAG,
                        "device token: 1 to %u characters of A-Z a-z 0-9 - . _ ~ + / (then '=')",
                        (unsigned)SO_MAX_TOKEN_LENGTH);
    return ESP_OK;
}

esp_err_t secure_ota_auth_header(const secure_ota_config_t *cfg, char *out, size_t cap)
{
    if (cap) {
        out[0] = '\0';
    }
    if (!cfg->device_token) {
        return ESP_OK;
    }
    return so_bearer_header(cfg->device_token, out, cap) == SO_OK ? ESP_OK : ESP_ERR_INVALID_ARG;
}

static int device_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    esp_fill_random(out, len);
    return 0;
}

#if CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC
/* The HMAC peripheral with the eFuse key (purpose HMAC_UP): the ECIES image key's PBKDF2. */
static int efuse_hmac(void *ctx, const uint8_t *msg, size_t len, uint8_t out[32])
{
    (void)ctx;
    return esp_hmac_calculate((hmac_key_id_t)CONFIG_SECURE_OTA_IMAGE_HMAC_KEY_ID, msg, len, out) ==
                   ESP_OK
               ? 0
               : -1;
}
#endif

esp_err_t secure_ota_keyring(const secure_ota_config_t *cfg, so_keyring_t **out)
{
    so_keyring_t *ring = NULL;
    int r = so_keyring_new(device_rng, NULL, &ring);
    if (r == SO_OK) {
        r = so_keyring_set_manifest_key(ring, (const uint8_t *)cfg->manifest_key.pem,
                                        cfg->manifest_key.len);
    }
    if (r == SO_OK) {
#if CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC
        r = so_keyring_derive_image_key(ring, efuse_hmac, NULL);
#else
        r = so_keyring_set_image_key(ring, (const uint8_t *)cfg->image_key.pem, cfg->image_key.len);
#endif
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
        secure_ota_nvs_load_keyset(ring);
    }
    if (r != SO_OK) {
        so_keyring_free(ring);
        ESP_LOGE(TAG, "keys: %s", secure_ota_err_to_name(secure_ota_err_from_core(r)));
        return secure_ota_err_from_core(r);
    }
    *out = ring;
    return ESP_OK;
}
