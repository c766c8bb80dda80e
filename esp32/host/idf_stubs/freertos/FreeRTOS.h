#pragma once
#include <stdint.h>
#include "sdkconfig.h"
typedef uint32_t TickType_t;
typedef int BaseType_t;
typedef unsigned UBaseType_t;
typedef void *TaskHandle_t;
#define pdTRUE ((BaseType_t)1)
#define pdPASS (pdTRUE)
#define pdMS_TO_TICKS(ms) ((TickType_t)(ms))
