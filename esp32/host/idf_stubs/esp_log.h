#pragma once
#include <stdio.h>
#define ESP_LOGE(tag, ...) ((void)(tag), printf(__VA_ARGS__))
#define ESP_LOGW(tag, ...) ((void)(tag), printf(__VA_ARGS__))
#define ESP_LOGI(tag, ...) ((void)(tag), printf(__VA_ARGS__))
#define ESP_LOGD(tag, ...) ((void)(tag), printf(__VA_ARGS__))
