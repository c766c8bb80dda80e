#pragma once
#include "freertos/FreeRTOS.h"
typedef void (*TaskFunction_t)(void *);
BaseType_t xTaskCreate(TaskFunction_t fn, const char *name, uint32_t stack, void *arg,
                       unsigned priority, TaskHandle_t *handle);
void vTaskDelay(const TickType_t ticks);
