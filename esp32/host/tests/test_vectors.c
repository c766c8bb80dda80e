/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Every case of tests/vectors/cases.json through the C core: the same accept/reason/claims as
 * the Python reference that generated it. Cases marked "unchanged" are judged as the glue
 * judges an HTTP 304 for the manifest (so_judged_t, so_decide_unchanged); cases marked "none" as
 * it judges an HTTP 404 (so_freshness_check_none, so_decide_none).
 */
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "host_verify.h"
#include "test_util.h"

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static const char *str_or_null(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_vectors VECTORS_DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char *cases_path = path_join(dir, "cases.json");
    size_t len = 0;
    uint8_t *text = host_read_file(cases_path, 4u << 20, &len);
    free(cases_path);
    if (!text) {
        fprintf(stderr, "cannot read %s/cases.json\n", dir);
        return 2;
    }
    cJSON *doc = cJSON_ParseWithLength((const char *)text, len);
    free(text);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases");
    const char *loaded_dir = NULL;
    host_keys_t *keys = NULL;
    int count = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        const char *name = str_or_null(c, "name");
        const char *key_dir = str_or_null(c, "keys");
        if (!loaded_dir || strcmp(loaded_dir, key_dir) != 0) {
            host_free_keys(keys);
            char *kd = path_join(dir, key_dir);
            char err[512];
            keys = host_load_keys(kd, err, sizeof err);
            free(kd);
            CHECK(keys != NULL, "%s: %s", name, err);
            if (!keys) {
                break;
            }
            loaded_dir = key_dir;
        }
        char *manifest = str_or_null(c, "manifest") ? path_join(dir, str_or_null(c, "manifest"))
                                                     : NULL;
        char *bin = str_or_null(c, "bin") ? path_join(dir, str_or_null(c, "bin")) : NULL;
        char *fresh = str_or_null(c, "freshness") ? path_join(dir, str_or_null(c, "freshness"))
                                                   : NULL;
        const cJSON *chip = cJSON_GetObjectItemCaseSensitive(c, "chip_id");
        const cJSON *now = cJSON_GetObjectItemCaseSensitive(c, "now");
        host_verify_args_t args = {
            .device_type = str_or_null(c, "device_type"),
            .installed_seq = (int64_t)cJSON_GetObjectItemCaseSensitive(c, "installed_seq")->valuedouble,
            .secure_version = (int64_t)cJSON_GetObjectItemCaseSensitive(c, "secure_version")->valuedouble,
            .has_chip = cJSON_IsNumber(chip),
            .chip_id = cJSON_IsNumber(chip) ? (uint32_t)chip->valuedouble : 0,
            .has_now = cJSON_IsNumber(now),
            .now = cJSON_IsNumber(now) ? (uint64_t)now->valuedouble : 0,
            .freshness_file = fresh,
            .nonce = str_or_null(c, "nonce"),
            .device_id = str_or_null(c, "device_id"), /* absent: a device without an id */
            .manifest = manifest,
            .bin = bin,
            .unchanged = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "unchanged")),
            .none = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "none")),
        };
        host_verify_result_t result;
        host_verify(host_ring(keys), &args, &result);
        char *printed = NULL;
        size_t printed_len = 0;
        FILE *mem = open_memstream(&printed, &printed_len);
        host_print_result(mem, &result);
        fclose(mem);
        cJSON *got = cJSON_Parse(printed);
        const cJSON *expect = cJSON_GetObjectItemCaseSensitive(c, "expect");
        CHECK(got && cJSON_Compare(got, expect, true), "%s: got %s (expected: see cases.json)",
              name, printed);
        cJSON_Delete(got);
        free(printed);
        free(manifest);
        free(bin);
        free(fresh);
        count++;
    }
    host_free_keys(keys);
    cJSON_Delete(doc);
    CHECK(count >= 80, "only %d cases", count);
    printf("vectors: %d cases\n", count);
    return test_summary("test_vectors");
}
