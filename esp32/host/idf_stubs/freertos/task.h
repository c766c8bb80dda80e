#pragma once
#include "freertos/FreeRTOS.h"
typedef void (*TaskFunction_t)(void *);
#define tskIDLE_PRIORITY ((UBaseType_t)0U)
BaseType_t xTaskCreate(TaskFunction_t fn, const char *name, uint32_t stack, void *arg,
                       UBaseType_t priority, TaskHandle_t *handle);
void vTaskDelay(const TickType_t ticks);
/* ESP-IDF: in bytes (StackType_t is uint8_t) */
UBaseType_t uxTaskGetStackHighWaterMark(TaskHandle_t task);
