/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * secure_ota_glue_report: the component's report path (src/secure_ota_report.c with the POST of
 * secure_ota_http.c and NVS of secure_ota_nvs.c) run on the host, against the host
 * replacements of idf_host.c ($SO_HOST_NVS holds the device's NVS between runs: each run is
 * one boot). For tests/integration/server/test_c_glue_reports.py.
 *
 *   secure_ota_glue_report --server URL --ca FILE --device-type T [--token TOKEN]
 *       [--device-id ID] [--timeout-ms N] COMMAND
 *   COMMAND: report EVENT [RELEASE [REASON|- [DETAIL]]]  secure_ota_report()
 *            later EVENT RELEASE                        secure_ota_report_later()
 *            flush                                      secure_ota_report_flush()
 *            device-id                                  print secure_ota_device_id()
 *
 * Exit 0 (reports are best effort: the functions return nothing), 1 for a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secure_ota_priv.h"

static int usage(void)
{
    fputs("usage: secure_ota_glue_report --server URL --ca FILE --device-type T [--token TOKEN]\n"
          "           [--device-id ID] [--timeout-ms N] report EVENT [RELEASE [REASON|- [DETAIL]]]"
          " | later EVENT RELEASE | flush | device-id\n",
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

int main(int argc, char **argv)
{
    secure_ota_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *ca_file = NULL;
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
