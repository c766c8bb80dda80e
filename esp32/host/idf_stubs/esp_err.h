#pragma once
/* The ESP-IDF release whose headers these stubs copy: the lowest idf_component.yml admits
 * (the ctest idf_stub_versions keeps the two in step). */
#define SO_HOST_STUB_IDF_VERSION "5.2"
#include <stdint.h>
typedef int esp_err_t;
#define ESP_OK 0
#define ESP_FAIL -1
#define ESP_ERR_NO_MEM 0x101
#define ESP_ERR_INVALID_ARG 0x102
#define ESP_ERR_INVALID_STATE 0x103
#define ESP_ERR_INVALID_SIZE 0x104
#define ESP_ERR_NOT_FOUND 0x105
#define ESP_ERR_NOT_SUPPORTED 0x106
#define ESP_ERR_TIMEOUT 0x107
#define ESP_ERR_INVALID_RESPONSE 0x108
#define ESP_ERR_NOT_FINISHED 0x10C
const char *esp_err_to_name(esp_err_t code);
void _esp_error_check_failed(esp_err_t rc, const char *file, int line, const char *function, const char *expression);
#define ESP_ERROR_CHECK(x) do { esp_err_t err_rc_ = (x); if (err_rc_ != ESP_OK) { \
    _esp_error_check_failed(err_rc_, __FILE__, __LINE__, __func__, #x); } } while (0)
