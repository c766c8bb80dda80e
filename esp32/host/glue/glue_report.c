/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * secure_ota_glue_report: the component's report path (src/secure_ota_report.c with the POST of
 * secure_ota_http.c and NVS of secure_ota_nvs.c) and its check (src/secure_ota_check.c: the
 * poll and its judgement) run on the host, against the host replacements of idf_host.c
 * ($SO_HOST_NVS holds the device's NVS between runs: each run is one boot). For
 * tests/integration/server/test_c_glue_reports.py and test_c_glue_rollout.py.
 *
 *   secure_ota_glue_report --server URL --ca FILE --device-type T [--token TOKEN]
 *       [--device-id ID] [--timeout-ms N] [--device-keys DIR] COMMAND
 *   COMMAND: report EVENT [RELEASE [REASON|- [DETAIL]]]  secure_ota_report()
 *            later EVENT RELEASE                        secure_ota_report_later()
 *            flush                                      secure_ota_report_flush()
 *            device-id                                  print secure_ota_device_id()
 *            check                                      secure_ota_check_for_update()
 *
 * check needs --device-keys DIR (the device's files as `fota keys generate` writes them:
 * manifest_encryption_key.pem, pre_encryption_key.pem, manifest_signing_pub*.pem,
 * secure_boot_signing_pub.pem and, if present, freshness_pub.pem: then freshness is required)
 * and prints {"ret": NAME, "verdict": NAME, "available": BOOL, "seq": N|null,
 * "server_release": N} (seq: the verified claims' when a manifest opened).
 * Exit 0 (reports are best effort: the functions return nothing; check prints its result
 * whatever it is), 1 for a usage error or unreadable keys.
 */
#include <dirent.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secure_ota_priv.h"

static int usage(void)
{
    fputs("usage: secure_ota_glue_report --server URL --ca FILE --device-type T [--token TOKEN]\n"
          "           [--device-id ID] [--timeout-ms N] [--device-keys DIR]\n"
          "           report EVENT [RELEASE [REASON|- [DETAIL]]] | later EVENT RELEASE | flush"
          " | device-id | check\n",
          stderr);
    return 1;
}

static int event_of(const char *name)
{
    for (int e = 0; e < SO_EVENT_COUNT; e++) {
        if (!strcmp(name, so_event_name(e))) {
            return e;
        }
    }
    return -1;
}

static int reason_of(const char *name)
{
    if (!strcmp(name, "-")) {
        return 0; /* none */
    }
    for (int r = 1; r < SO_REASON_COUNT; r++) {
        if (!strcmp(name, so_reason_name(r))) {
            return r;
        }
    }
    return -1;
}

static char *read_ca(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    char *buf = calloc(1, 65536 + 1);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    *len = n + 1; /* PEM with its NUL, as EMBED_TXTFILES gives it */
    return buf;
}

/* DIR/NAME as a PEM (with its NUL); false when absent or unreadable */
static bool read_pem(const char *dir, const char *name, secure_ota_pem_t *out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len = 0;
    char *pem = read_ca(path, &len);
    if (!pem || len < 2) {
        free(pem);
        return false;
    }
    out->pem = pem;
    out->len = len;
    return true;
}

#define MAX_KEYS 8

typedef struct {
    secure_ota_pem_t signing[MAX_KEYS], freshness;
} device_keys_t;

/* The device's keys from DIR into cfg (freed by free_keys) */
static bool load_keys(const char *dir, secure_ota_config_t *cfg, device_keys_t *keys)
{
    memset(keys, 0, sizeof *keys);
    if (!read_pem(dir, "manifest_encryption_key.pem", &cfg->manifest_key) ||
        !read_pem(dir, "pre_encryption_key.pem", &cfg->image_key) ||
        !read_pem(dir, "secure_boot_signing_pub.pem", &cfg->secure_boot_key)) {
        return false;
    }
    DIR *d = opendir(dir);
    if (!d) {
        return false;
    }
    size_t n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL && n < MAX_KEYS) {
        if (!fnmatch("manifest_signing_pub*.pem", e->d_name, 0) &&
            read_pem(dir, e->d_name, &keys->signing[n])) {
            n++;
        }
    }
    closedir(d);
    cfg->signing_keys = keys->signing;
    cfg->signing_key_count = n;
    if (read_pem(dir, "freshness_pub.pem", &keys->freshness)) {
        cfg->freshness_keys = &keys->freshness;
        cfg->freshness_key_count = 1;
    }
    return n > 0;
}

static void free_keys(secure_ota_config_t *cfg, device_keys_t *keys)
{
    free((void *)cfg->manifest_key.pem);
    free((void *)cfg->image_key.pem);
    free((void *)cfg->secure_boot_key.pem);
    for (size_t i = 0; i < MAX_KEYS; i++) {
        free((void *)keys->signing[i].pem);
    }
    free((void *)keys->freshness.pem);
}

static int check(secure_ota_config_t *cfg, const char *keys_dir)
{
    device_keys_t keys;
    if (!keys_dir || !load_keys(keys_dir, cfg, &keys)) {
        fprintf(stderr, "check: --device-keys DIR with the device's key files is required\n");
        if (keys_dir) {
            free_keys(cfg, &keys);
        }
        return 1;
    }
    secure_ota_update_info_t info;
    esp_err_t ret = secure_ota_check_for_update(cfg, &info);
    printf("{\"ret\": \"%s\", \"verdict\": \"%s\", \"available\": %s, \"seq\": ",
           secure_ota_err_to_name(ret), secure_ota_err_to_name(info.verdict),
           info.available ? "true" : "false");
    if (info.have_claims) {
        printf("%u", (unsigned)info.claims.seq);
    } else {
        printf("null");
    }
    printf(", \"server_release\": %u}\n", (unsigned)info.server_release_id);
    free_keys(cfg, &keys);
    return 0;
}

int main(int argc, char **argv)
{
    secure_ota_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *ca_file = NULL, *keys_dir = NULL;
    int i = 1;
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        const char *v = argv[i + 1];
        if (!strcmp(argv[i], "--server")) {
            cfg.server_url = v;
        } else if (!strcmp(argv[i], "--ca")) {
            ca_file = v;
        } else if (!strcmp(argv[i], "--device-type")) {
            cfg.device_type = v;
        } else if (!strcmp(argv[i], "--token")) {
            cfg.device_token = v;
        } else if (!strcmp(argv[i], "--device-id")) {
            cfg.device_id = v;
        } else if (!strcmp(argv[i], "--timeout-ms")) {
            cfg.timeout_ms = atoi(v);
        } else if (!strcmp(argv[i], "--device-keys")) {
            keys_dir = v;
        } else {
            return usage();
        }
    }
    if (i >= argc || !cfg.server_url || !ca_file || !cfg.device_type) {
        return usage();
    }
    size_t ca_len = 0;
    char *ca = read_ca(ca_file, &ca_len);
    if (!ca) {
        return usage();
    }
    cfg.ca_cert.pem = ca;
    cfg.ca_cert.len = ca_len;
    int ret = 0;
    const char *cmd = argv[i];
    if (!strcmp(cmd, "report") && i + 1 < argc && event_of(argv[i + 1]) >= 0) {
        uint32_t release = i + 2 < argc ? (uint32_t)strtoul(argv[i + 2], NULL, 10) : 0;
        int reason = i + 3 < argc ? reason_of(argv[i + 3]) : 0;
        const char *detail = i + 4 < argc ? argv[i + 4] : NULL;
        secure_ota_report(&cfg, (so_event_t)event_of(argv[i + 1]), reason, release, detail);
    } else if (!strcmp(cmd, "later") && i + 2 < argc && event_of(argv[i + 1]) >= 0) {
        secure_ota_report_later((so_event_t)event_of(argv[i + 1]),
                                (uint32_t)strtoul(argv[i + 2], NULL, 10));
    } else if (!strcmp(cmd, "flush")) {
        secure_ota_report_flush(&cfg);
    } else if (!strcmp(cmd, "check")) {
        ret = check(&cfg, keys_dir);
    } else if (!strcmp(cmd, "device-id")) {
        char id[SO_MAX_NAME_LENGTH + 1];
        ret = secure_ota_device_id(&cfg, id, sizeof id) == ESP_OK ? 0 : 1;
        if (!ret) {
            puts(id);
        }
    } else {
        ret = usage();
    }
    free(ca);
    return ret;
}
