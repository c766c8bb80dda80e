#pragma once
#include <stdio.h>
#define ESP_LOGE(tag, ...) ((void)(tag), fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
#define ESP_LOGW(tag, ...) ((void)(tag), fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
#define ESP_LOGI(tag, ...) ((void)(tag), fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
#define ESP_LOGD(tag, ...) ((void)(tag), fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
