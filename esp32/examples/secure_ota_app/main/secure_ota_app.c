/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * secure_ota example: after boot, a FreeRTOS task at CONFIG_SECURE_OTA_TASK_PRIORITY (default
 * tskIDLE_PRIORITY, see Kconfig) runs a self-test if the image is new (rollback pending) and
 * keeps it only if the self-test passes; then it asks the update server for a new release every
 * CONFIG_SECURE_OTA_POLL_INTERVAL_S seconds and installs verified ones.
 */
#include <inttypes.h>
#include <string.h>

#include "esp_event.h"
#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_ota_ops.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "nvs_flash.h"
#include "protocol_examples_common.h"
#include "secure_ota_esp32.h"

static const char *TAG = "secure_ota_app";

#define EMBEDDED(name)                                                                          \
    extern const char name##_start[] asm("_binary_" #name "_start");                            \
    extern const char name##_end[] asm("_binary_" #name "_end")
#define PEM(name) {.pem = name##_start, .len = (size_t)(name##_end - name##_start)}

EMBEDDED(ca_cert_pem);
EMBEDDED(manifest_encryption_key_pem);
#if !CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC /* else derived from the eFuse HMAC key */
EMBEDDED(pre_encryption_key_pem);
#endif
EMBEDDED(manifest_signing_pub_pem);
EMBEDDED(freshness_pub_pem);
EMBEDDED(secure_boot_signing_pub_pem);

static secure_ota_config_t make_config(void)
{
    /* the embedded manifest-signing key set, version CONFIG_SECURE_OTA_KEYSET_VERSION (after
     * `fota keys rotate`: the directory's manifest_signing_pub*.pem and keyset_version); the
     * device follows later rotations by itself (the same constant values are stored on every
     * call) */
    static secure_ota_pem_t signing[1];
    static secure_ota_pem_t freshness[1];
    signing[0] = (secure_ota_pem_t)PEM(manifest_signing_pub_pem);
    freshness[0] = (secure_ota_pem_t)PEM(freshness_pub_pem);
    secure_ota_config_t cfg;
    secure_ota_config_from_kconfig(&cfg);
    cfg.ca_cert = (secure_ota_pem_t)PEM(ca_cert_pem);
    cfg.manifest_key = (secure_ota_pem_t)PEM(manifest_encryption_key_pem);
#if !CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC
    cfg.image_key = (secure_ota_pem_t)PEM(pre_encryption_key_pem);
#endif
    cfg.signing_keys = signing;
    cfg.signing_key_count = sizeof signing / sizeof signing[0];
    cfg.freshness_keys = freshness;
    cfg.freshness_key_count = sizeof freshness / sizeof freshness[0];
    cfg.secure_boot_key = (secure_ota_pem_t)PEM(secure_boot_signing_pub_pem);
    return cfg;
}

/* With CONFIG_SECURE_OTA_LOG_METRICS, one line per check or update for measurements:
 * "metrics check_us=N heap_min=N stack_hwm=N" (update_us=N after an update attempt). */
static void log_metrics(const char *op, int64_t started_us)
{
#if CONFIG_SECURE_OTA_LOG_METRICS
    ESP_LOGI(TAG, "metrics %s_us=%" PRId64 " heap_min=%u stack_hwm=%u", op,
             esp_timer_get_time() - started_us,
             (unsigned)heap_caps_get_minimum_free_size(MALLOC_CAP_DEFAULT),
             (unsigned)uxTaskGetStackHighWaterMark(NULL));
#else
    (void)op;
    (void)started_us;
#endif
}

static esp_err_t timed_check(const secure_ota_config_t *cfg, secure_ota_update_info_t *info)
{
    const int64_t started = esp_timer_get_time();
    esp_err_t err = secure_ota_check_for_update(cfg, info);
    log_metrics("check", started);
    return err;
}

/* Replace with the application's own checks (sensors, peripherals, the server reachable). */
static bool self_test(void)
{
    secure_ota_config_t cfg = make_config();
    secure_ota_update_info_t info;
    esp_err_t err = timed_check(&cfg, &info);
    /* the new image can reach and authenticate the server, and its keys work */
    return err == ESP_OK || secure_ota_err_is_reason(err);
}

static void confirm_running_image(void)
{
    const esp_partition_t *running = esp_ota_get_running_partition();
    esp_ota_img_states_t state;
    if (esp_ota_get_state_partition(running, &state) == ESP_OK &&
        state == ESP_OTA_IMG_PENDING_VERIFY) {
        if (!self_test()) {
            ESP_LOGE(TAG, "self-test failed: rolling back to the previous image");
            esp_ota_mark_app_invalid_rollback_and_reboot();
        }
        ESP_LOGI(TAG, "self-test passed: keeping this image");
    }
    ESP_ERROR_CHECK(secure_ota_mark_running_valid());
}

/* Runs at CONFIG_SECURE_OTA_TASK_PRIORITY: a check computes for seconds without blocking (the
 * manifest's RSA-4096 key), and only at tskIDLE_PRIORITY does IDLE keep running meanwhile and
 * feed the task watchdog. The self-test runs here too, not in app_main (priority 1). */
static void update_task(void *arg)
{
    (void)arg;
    confirm_running_image();
    secure_ota_config_t cfg = make_config();
    char device_id[SO_MAX_NAME_LENGTH + 1];
    if (secure_ota_device_id(&cfg, device_id, sizeof device_id) == ESP_OK) {
        /* with device_auth = device-token, the per-device token is named like this id */
        ESP_LOGI(TAG, "device id %s", device_id);
    }
    for (;;) {
        secure_ota_update_info_t info;
        esp_err_t err = timed_check(&cfg, &info);
        if (err == ESP_OK && info.available) {
            const int64_t started = esp_timer_get_time();
            err = secure_ota_perform_update(&cfg, &info);
            log_metrics("update", started);
            if (err == ESP_OK) {
                ESP_LOGI(TAG, "update installed, restarting");
                esp_restart();
            }
        }
        if (err != ESP_OK) {
            ESP_LOGW(TAG, "update check: %s", secure_ota_err_to_name(err));
        }
        vTaskDelay(pdMS_TO_TICKS(CONFIG_SECURE_OTA_POLL_INTERVAL_S * 1000ULL));
    }
}

/*
 * The default NVS partition, which secure_ota reads with nvs_open(). With flash encryption on,
 * ESP-IDF also turns NVS encryption on (CONFIG_NVS_ENCRYPTION): nvs_flash_init() then reads, or
 * on first boot generates, the NVS keys in the encrypted nvs_keys partition (partitions.csv)
 * and opens the partition encrypted. As in ESP-IDF's examples, the partition is erased only
 * when it is full or from a newer NVS version (this forgets the installed seq and any key set
 * learnt from rotations; the device falls back to the embedded keys).
 */
static esp_err_t init_nvs(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_LOGW(TAG, "NVS: %s, erasing the partition", esp_err_to_name(err));
        err = nvs_flash_erase();
        if (err == ESP_OK) {
            err = nvs_flash_init();
        }
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "nvs_flash_init failed: %s. With NVS encryption (on by default with flash "
                 "encryption) the partition table needs an nvs_keys partition (flag encrypted)",
                 esp_err_to_name(err));
    }
    return err;
}

void app_main(void)
{
    if (init_nvs() != ESP_OK) {
        /* no updates without NVS (installed seq, key set, checkpoints); no reboot loop either.
         * A new image still pending verification is never confirmed, so the bootloader rolls it
         * back at the next reset. */
        ESP_LOGE(TAG, "secure_ota disabled: NVS is not available");
        return;
    }
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    ESP_ERROR_CHECK(example_connect());
    if (xTaskCreate(update_task, "secure_ota", 8192, NULL, CONFIG_SECURE_OTA_TASK_PRIORITY,
                    NULL) != pdPASS) {
        ESP_LOGE(TAG, "cannot create the update task");
    }
}
