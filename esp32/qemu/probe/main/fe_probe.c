/*
 * Flash-encryption probe: writes PROBE_BYTES of known plaintext into the encrypted partition
 * "probe" with esp_partition_write (the write path secure_ota uses for the OTA slot), reads it
 * back through the same API, and logs which 16-byte lines differ. esp32/qemu/probe.py then
 * decrypts the partition from the flash file on the host (espsecure) and compares it with the
 * same pattern, so a wrong encryption is told apart from a wrong decryption.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "esp_flash_encrypt.h"
#include "esp_log.h"
#include "esp_partition.h"

#define PROBE_BYTES 2048
#define LINE 16

static const char *TAG = "fe_probe";
static uint8_t plain[PROBE_BYTES];
static uint8_t back[PROBE_BYTES];

/* the pattern probe.py expects: byte i of line n is (n * 7 + i * 13 + 0x5a) mod 256, and the
 * line's first four bytes hold n, so no two lines are alike */
static void fill_pattern(void)
{
    for (int i = 0; i < PROBE_BYTES; i++) {
        plain[i] = (uint8_t)((i / LINE) * 7 + (i % LINE) * 13 + 0x5a);
    }
    for (uint32_t n = 0; n < PROBE_BYTES / LINE; n++) {
        memcpy(&plain[n * LINE], &n, sizeof n);
    }
}

void app_main(void)
{
    const esp_partition_t *p =
        esp_partition_find_first(ESP_PARTITION_TYPE_DATA, 0x40, "probe");
    if (p == NULL) {
        ESP_LOGE(TAG, "no probe partition");
        return;
    }
    ESP_LOGI(TAG, "flash encryption %s, partition probe at 0x%" PRIx32 " (encrypted=%d)",
             esp_flash_encryption_enabled() ? "on" : "off", p->address, p->encrypted);
    fill_pattern();
    ESP_ERROR_CHECK(esp_partition_erase_range(p, 0, 0x1000));
    ESP_ERROR_CHECK(esp_partition_write(p, 0, plain, PROBE_BYTES));
    ESP_ERROR_CHECK(esp_partition_read(p, 0, back, PROBE_BYTES));
    int bad = 0;
    char list[512] = "";
    for (int n = 0; n < PROBE_BYTES / LINE; n++) {
        if (memcmp(&plain[n * LINE], &back[n * LINE], LINE) != 0) {
            bad++;
            if (strlen(list) < sizeof list - 12) {
                snprintf(list + strlen(list), sizeof list - strlen(list), " %" PRIx32,
                         (uint32_t)(p->address + n * LINE));
            }
        }
    }
    ESP_LOGI(TAG, "readback: %d of %d lines differ%s%s", bad, PROBE_BYTES / LINE,
             bad ? ", at" : "", list);
    ESP_LOGI(TAG, "probe done");
}
