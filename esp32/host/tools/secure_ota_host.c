/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * secure_ota_host: the ESP32 device's verification core, on the host.
 *
 *   secure_ota_host verify --device-keys DIR --installed-seq N --secure-version N
 *       --device-type T [--chip-id N] [--now UNIX] [--freshness FILE --nonce HEX]
 *       MANIFEST [BIN]
 *
 * Prints exactly one JSON object: {"accept": bool, "reason": null|"<code>", "claims": {...}|null}
 * ("claims" is non-null whenever the manifest opened, even if a later check refused it).
 * Exit status: 0 accept, 3 reject, 1 any other failure (usage, keys, files).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_verify.h"

static const char USAGE[] =
    "usage: secure_ota_host verify --device-keys DIR --installed-seq N --secure-version N\n"
    "           --device-type T [--chip-id N] [--now UNIX] [--freshness FILE --nonce HEX]\n"
    "           MANIFEST [BIN]\n"
    "\n"
    "Judge release files exactly as the ESP32 component does (docs/formats.md) and print\n"
    "{\"accept\": .., \"reason\": .., \"claims\": ..}. Exit 0 accept, 3 reject, 1 error.\n";

static int fail(const char *message)
{
    fprintf(stderr, "secure_ota_host: %s\n", message);
    return 1;
}

static bool parse_i64(const char *text, int64_t *out)
{
    if (!text || !*text) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end) {
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        fputs(USAGE, stderr);
        return 1;
    }
    host_verify_args_t args = {0};
    const char *keys_dir = NULL;
    bool have_seq = false, have_sv = false;
    const char *positional[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        if (!strcmp(a, "--device-keys") && v) {
            keys_dir = v; i++;
        } else if (!strcmp(a, "--installed-seq") && parse_i64(v, &n)) {
            args.installed_seq = n; have_seq = true; i++;
        } else if (!strcmp(a, "--secure-version") && parse_i64(v, &n)) {
            args.secure_version = n; have_sv = true; i++;
        } else if (!strcmp(a, "--device-type") && v) {
            args.device_type = v; i++;
        } else if (!strcmp(a, "--chip-id") && parse_i64(v, &n) && n >= 0 && n <= 0xFFFF) {
            args.has_chip = true; args.chip_id = (uint32_t)n; i++;
        } else if (!strcmp(a, "--now") && parse_i64(v, &n) && n >= 0) {
            args.has_now = true; args.now = (uint64_t)n; i++;
        } else if (!strcmp(a, "--freshness") && v) {
            args.freshness_file = v; i++;
        } else if (!strcmp(a, "--nonce") && v) {
            args.nonce = v; i++;
        } else if (a[0] == '-' && a[1] == '-') {
            fputs(USAGE, stderr);
            return fail("unknown option or missing/invalid value");
        } else if (npos < 2) {
            positional[npos++] = a;
        } else {
            return fail("too many arguments");
        }
    }
    if (!keys_dir || !have_seq || !have_sv || !args.device_type || npos < 1) {
        fputs(USAGE, stderr);
        return fail("--device-keys, --installed-seq, --secure-version, --device-type and MANIFEST "
                    "are required");
    }
    if ((args.freshness_file == NULL) != (args.nonce == NULL)) {
        return fail("--freshness and --nonce go together");
    }
    args.manifest = positional[0];
    args.bin = positional[1];

    char err[512];
    host_keys_t *keys = host_load_keys(keys_dir, err, sizeof err);
    if (!keys) {
        return fail(err);
    }
    host_verify_result_t result;
    host_verify(host_ring(keys), &args, &result);
    host_free_keys(keys);
    if (result.status < 0) {
        return fail(result.error);
    }
    host_print_result(stdout, &result);
    return result.status == SO_OK ? 0 : 3;
}
