#pragma once
#include <stddef.h>
#include <stdint.h>
/* esp_heap_caps.h (ESP-IDF 5.2, component heap) */
#define MALLOC_CAP_DEFAULT (1 << 12)
size_t heap_caps_get_minimum_free_size(uint32_t caps);
