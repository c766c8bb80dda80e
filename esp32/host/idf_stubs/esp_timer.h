#pragma once
#include <stdint.h>
/* esp_timer.h (ESP-IDF 5.2): microseconds since boot */
int64_t esp_timer_get_time(void);
