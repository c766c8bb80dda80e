/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * secure_ota_host: the ESP32 device's verification core, on the host.
 *
 *   secure_ota_host verify --device-keys DIR --installed-seq N --secure-version N
 *       --device-type T [--chip-id N] [--now UNIX] [--freshness FILE --nonce HEX]
 *       [--keyset-version N] [--unchanged] MANIFEST [BIN]
 *   secure_ota_host verify ... --none [MANIFEST]
 *   secure_ota_host keyid DER_FILE...
 *
 * verify prints exactly one JSON object: {"accept": bool, "reason": null|"<code>",
 * "claims": {...}|null, "keyset": {"version": N, "kids": [...]}|null} ("claims" and "keyset",
 * the manifest-signing key set reached through the manifest's key rotations, are non-null
 * whenever the manifest opened, even if a later check refused it).
 * Exit status: 0 accept, 3 reject, 1 any other failure (usage, keys, files).
 * --unchanged judges MANIFEST as the component judges an HTTP 304 for it: the device judged it
 * already_installed when it received it (else exit 1) and kept only its SHA-256 and exp
 * (so_judged_t); the freshness statement is checked against that digest, then
 * so_decide_unchanged decides (already_installed, expired past exp, rollback for a release
 * below the installed one).
 * --none judges an HTTP 404: the statement must answer "none", then so_decide_none with the
 * record of MANIFEST (the installed release's, if given): already_installed, or expired.
 *
 * keyid reads each file as a DER SubjectPublicKeyInfo named by a key-rotation statement and
 * prints one line per file: {"kid": "<key id>"} or {"kid": null} if it is not such a key.
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
    "           [--keyset-version N] [--unchanged] MANIFEST [BIN]\n"
    "       secure_ota_host verify ... --none [MANIFEST]\n"
    "       secure_ota_host keyid DER_FILE...\n"
    "\n"
    "Judge release files exactly as the ESP32 component does (docs/formats.md) and print\n"
    "{\"accept\": .., \"reason\": .., \"claims\": .., \"keyset\": ..}. Exit 0 accept, 3 reject,\n"
    "1 error. --keyset-version: the version of the device's manifest-signing key set (default:\n"
    "DIR/keyset_version, else 1). --unchanged: judge MANIFEST as on an HTTP 304 for it (the\n"
    "device judged it already_installed before and kept its SHA-256, exp and seq). --none:\n"
    "judge an HTTP 404 (\"no release\"; MANIFEST: the installed release's). keyid: the key id\n"
    "of each rotation-statement key, or null.\n";

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

static int keyid(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        size_t len = 0;
        uint8_t *der = host_read_file(argv[i], 64u * 1024u, &len);
        if (!der) {
            return fail("cannot read a key file");
        }
        char kid[65];
        int ret = len > 64u * 1024u ? SO_ERR_KEY : so_spki_key_id(der, len, kid);
        free(der);
        if (ret == SO_ERR_NO_MEM) {
            return fail("out of memory");
        }
        if (ret == SO_OK) {
            printf("{\"kid\": \"%s\"}\n", kid);
        } else {
            puts("{\"kid\": null}");
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "keyid")) {
        return keyid(argc, argv);
    }
    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        fputs(USAGE, stderr);
        return 1;
    }
    host_verify_args_t args = {0};
    const char *keys_dir = NULL;
    bool have_seq = false, have_sv = false, have_keyset_version = false;
    int64_t keyset_version = 0;
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
        } else if (!strcmp(a, "--keyset-version") && parse_i64(v, &n) && n >= 1 &&
                   n <= SO_MAX_KEYSET_VERSION) {
            keyset_version = n; have_keyset_version = true; i++;
        } else if (!strcmp(a, "--unchanged")) {
            args.unchanged = true;
        } else if (!strcmp(a, "--none")) {
            args.none = true;
        } else if (a[0] == '-' && a[1] == '-') {
            fputs(USAGE, stderr);
            return fail("unknown option or missing/invalid value");
        } else if (npos < 2) {
            positional[npos++] = a;
        } else {
            return fail("too many arguments");
        }
    }
    if (!keys_dir || !have_seq || !have_sv || !args.device_type || (npos < 1 && !args.none)) {
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
    if (have_keyset_version &&
        so_keyring_set_keyset_version(host_ring(keys), (uint32_t)keyset_version) != SO_OK) {
        host_free_keys(keys);
        return fail("--keyset-version out of range");
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
