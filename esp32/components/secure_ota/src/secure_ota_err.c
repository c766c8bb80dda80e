/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * What the glue reports: the core's results as esp_err_t (SECURE_OTA_ERR_BASE + reason), their
 * names, and the "metrics" log lines of CONFIG_SECURE_OTA_LOG_METRICS. Used by every other
 * glue file; uses none of them.
 */
#include <inttypes.h>

#include "esp_log.h"
#include "sdkconfig.h"
#include "secure_ota_priv.h"

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
    case SO_ERR_BUFFER: return ESP_ERR_INVALID_SIZE;
    case SO_ERR_FIELD: return ESP_ERR_INVALID_ARG;
    default: return ESP_FAIL;
    }
}

void secure_ota_log_metric(const char *name, int64_t value)
{
#if CONFIG_SECURE_OTA_LOG_METRICS
    ESP_LOGI("secure_ota", "metrics %s=%" PRId64, name, value);
#else
    (void)name;
    (void)value;
#endif
}
