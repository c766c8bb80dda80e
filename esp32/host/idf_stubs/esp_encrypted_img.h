#pragma once
/* Declarations of espressif/esp_encrypted_img 2.4.0 (idf-extra-components cdd592f), the oldest
 * version components/secure_ota/idf_component.yml admits: 2.4.0 added the ECIES-P256 scheme
 * (CONFIG_PRE_ENCRYPTED_OTA_USE_ECIES, cfg.hmac_key_id). The ctest idf_stub_versions keeps the
 * two in step. */
#define SO_HOST_STUB_ESP_ENCRYPTED_IMG_VERSION "2.4.0"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "esp_err.h"
#include "sdkconfig.h"
typedef void *esp_decrypt_handle_t;
typedef struct {
#if defined(CONFIG_PRE_ENCRYPTED_OTA_USE_RSA)
    const char *rsa_priv_key;
    size_t rsa_priv_key_len;
#elif defined(CONFIG_PRE_ENCRYPTED_OTA_USE_ECIES)
    int hmac_key_id;
#endif
} esp_decrypt_cfg_t;
typedef struct { const char *data_in; size_t data_in_len; char *data_out; size_t data_out_len; } pre_enc_decrypt_arg_t;
esp_decrypt_handle_t esp_encrypted_img_decrypt_start(const esp_decrypt_cfg_t *cfg);
esp_err_t esp_encrypted_img_decrypt_data(esp_decrypt_handle_t ctx, pre_enc_decrypt_arg_t *args);
esp_err_t esp_encrypted_img_decrypt_end(esp_decrypt_handle_t ctx);
esp_err_t esp_encrypted_img_decrypt_abort(esp_decrypt_handle_t ctx);
uint16_t esp_encrypted_img_get_header_size(void);
