/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * secure_ota_host: the ESP32 device's verification core, on the host.
 *
 *   secure_ota_host verify --device-keys DIR --installed-seq N --secure-version N
 *       --device-type T [--chip-id N] [--now UNIX] [--freshness FILE --nonce HEX]
 *       [--device-id ID] [--keyset-version N] [--unchanged] MANIFEST [BIN]
 *   secure_ota_host verify ... --none [MANIFEST]
 *   secure_ota_host keyid DER_FILE...
 *   secure_ota_host report-key FILE
 *   secure_ota_host report --key FILE --device-id ID --device-type T --event E [--reason CODE]
 *       [--detail TEXT] --seq N --secure-version N --version V --release N --counter N
 *       [--repeat N]
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
 * --device-id: the device's own id, the one its poll sent, for the freshness check (a statement
 * must name exactly it); without it the device has no id and refuses a statement naming one.
 *
 * keyid reads each file as a DER SubjectPublicKeyInfo named by a key-rotation statement and
 * prints one line per file: {"kid": "<key id>"} or {"kid": null} if it is not such a key.
 *
 * report-key generates a device report key (P-256, from getrandom) as the component does on
 * first use and writes its blob (so_report_key_export, 44 bytes, mode 0600) to FILE, which must
 * not exist; it prints {"kid": "<key id>", "pub": "<base64url SPKI>"}.
 * report signs one device report (docs/formats.md §11) with the key in FILE, exactly as the
 * component does, and prints the token. Exit 0; 4 when a member is out of its bounds (the
 * member is named on stderr); 1 for any other failure (a FILE that is not a report key blob).
 * --repeat N signs it N times (counters N.., the last token printed) and prints the time per
 * signature on stderr ("sign_us_per_report=...").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_verify.h"

static const char USAGE[] =
    "usage: secure_ota_host verify --device-keys DIR --installed-seq N --secure-version N\n"
    "           --device-type T [--chip-id N] [--now UNIX] [--freshness FILE --nonce HEX]\n"
    "           [--device-id ID] [--keyset-version N] [--unchanged] MANIFEST [BIN]\n"
    "       secure_ota_host verify ... --none [MANIFEST]\n"
    "       secure_ota_host keyid DER_FILE...\n"
    "       secure_ota_host report-key FILE\n"
    "       secure_ota_host report --key FILE --device-id ID --device-type T --event E\n"
    "           [--reason CODE] [--detail TEXT] --seq N --secure-version N --version V\n"
    "           --release N --counter N [--repeat N]\n"
    "\n"
    "Judge release files exactly as the ESP32 component does (docs/formats.md) and print\n"
    "{\"accept\": .., \"reason\": .., \"claims\": .., \"keyset\": ..}. Exit 0 accept, 3 reject,\n"
    "1 error. --keyset-version: the version of the device's manifest-signing key set (default:\n"
    "DIR/keyset_version, else 1). --unchanged: judge MANIFEST as on an HTTP 304 for it (the\n"
    "device judged it already_installed before and kept its SHA-256, exp and seq). --none:\n"
    "judge an HTTP 404 (\"no release\"; MANIFEST: the installed release's). --device-id: the\n"
    "device's own id (a statement may name none or this one; without it, none). keyid: the key id\n"
    "of each rotation-statement key, or null. report-key: a new device report key blob in FILE\n"
    "(must not exist); prints its kid and pub. report: sign one device report (docs/formats.md\n"
    "§11) with that key and print the token; exit 4 if a member is out of bounds.\n";

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

static int os_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    while (len) {
        ssize_t n = getrandom(out, len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        out += n;
        len -= (size_t)n;
    }
    return 0;
}

static int report_key(int argc, char **argv)
{
    if (argc != 3) {
        fputs(USAGE, stderr);
        return fail("report-key takes one FILE");
    }
    so_report_key_t *key = NULL;
    uint8_t blob[SO_REPORT_KEY_BLOB_SIZE];
    size_t len = 0;
    if (so_report_key_generate(os_rng, NULL, &key) != SO_OK ||
        so_report_key_export(key, blob, sizeof blob, &len) != SO_OK) {
        so_report_key_free(key);
        return fail("cannot generate a report key");
    }
    char kid[65], pub[SO_REPORT_PUB_LEN + 1];
    so_report_key_kid(key, kid);
    so_report_key_pub(key, pub);
    so_report_key_free(key);
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL, 0600);
    bool ok = fd >= 0 && write(fd, blob, len) == (ssize_t)len;
    ok = (fd >= 0 && close(fd) == 0) && ok;
    memset(blob, 0, sizeof blob);
    if (!ok) {
        return fail("cannot create the key file (it must not exist)");
    }
    printf("{\"kid\": \"%s\", \"pub\": \"%s\"}\n", kid, pub);
    return 0;
}

/* A number for a report member: out-of-range values become ones the core refuses. */
static bool report_number(const char *text, uint64_t *out)
{
    int64_t n;
    if (!parse_i64(text, &n)) {
        return false;
    }
    *out = n < 0 ? UINT64_MAX : (uint64_t)n;
    return true;
}

static uint32_t clamp_u32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int report(int argc, char **argv)
{
    so_report_t r = {0};
    const char *key_file = NULL, *event = NULL, *reason = NULL;
    uint64_t seq = 0, sv = 0, release = 0, counter = 0, repeat = 1;
    unsigned have = 0; /* bits: seq, secure_version, release, counter */
    for (int i = 2; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = v != NULL;
        if (!strcmp(a, "--key") && v) {
            key_file = v;
        } else if (!strcmp(a, "--device-id") && v) {
            r.device_id = v;
        } else if (!strcmp(a, "--device-type") && v) {
            r.device_type = v;
        } else if (!strcmp(a, "--event") && v) {
            event = v;
        } else if (!strcmp(a, "--reason") && v) {
            reason = v;
        } else if (!strcmp(a, "--detail") && v) {
            r.detail = v;
        } else if (!strcmp(a, "--version") && v) {
            r.version = v;
        } else if (!strcmp(a, "--seq")) {
            ok = report_number(v, &seq); have |= 1u;
        } else if (!strcmp(a, "--secure-version")) {
            ok = report_number(v, &sv); have |= 2u;
        } else if (!strcmp(a, "--release")) {
            ok = report_number(v, &release); have |= 4u;
        } else if (!strcmp(a, "--counter")) {
            ok = report_number(v, &counter); have |= 8u;
        } else if (!strcmp(a, "--repeat")) {
            ok = report_number(v, &repeat) && repeat >= 1 && repeat <= 100000;
        } else {
            ok = false;
        }
        if (!ok) {
            fputs(USAGE, stderr);
            return fail("report: unknown option or missing/invalid value");
        }
    }
    if (!key_file || !r.device_id || !r.device_type || !event || !r.version || have != 15u) {
        fputs(USAGE, stderr);
        return fail("report: --key, --device-id, --device-type, --event, --seq, --secure-version, "
                    "--version, --release and --counter are required");
    }
    r.event = SO_EVENT_COUNT;
    for (int e = 0; e < SO_EVENT_COUNT; e++) {
        if (!strcmp(event, so_event_name(e))) {
            r.event = (so_event_t)e;
        }
    }
    r.reason = reason ? -1 : 0;
    for (int c = 1; reason && c < SO_REASON_COUNT; c++) {
        if (!strcmp(reason, so_reason_name(c))) {
            r.reason = c;
        }
    }
    r.seq = clamp_u32(seq);
    r.secure_version = clamp_u32(sv);
    r.release = clamp_u32(release);
    r.counter = counter;
    size_t len = 0;
    uint8_t *blob = host_read_file(key_file, SO_REPORT_KEY_BLOB_SIZE, &len);
    if (!blob) {
        return fail("report: cannot read the key file");
    }
    so_report_key_t *key = NULL;
    int ret = so_report_key_load(blob, len, os_rng, NULL, &key);
    memset(blob, 0, len);
    free(blob);
    if (ret != SO_OK) {
        return fail("report: the key file is not a report key blob");
    }
    char token[SO_REPORT_TOKEN_MAX];
    const char *field = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < repeat && ret == SO_OK; i++) {
        r.counter = counter + i;
        ret = so_report_check(&r, &field);
        if (ret == SO_OK) {
            ret = so_report_sign(key, os_rng, NULL, &r, token, sizeof token, NULL);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    so_report_key_free(key);
    if (ret == SO_ERR_FIELD) {
        fprintf(stderr, "secure_ota_host: report: %s is out of its bounds\n", field);
        return 4;
    }
    if (ret != SO_OK) {
        return fail("report: signing failed");
    }
    if (repeat > 1) {
        double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 +
                     (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / (double)repeat;
        fprintf(stderr, "sign_us_per_report=%.1f\n", us);
    }
    puts(token);
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
    if (argc >= 2 && !strcmp(argv[1], "report-key")) {
        return report_key(argc, argv);
    }
    if (argc >= 2 && !strcmp(argv[1], "report")) {
        return report(argc, argv);
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
        } else if (!strcmp(a, "--device-id") && v) {
            args.device_id = v; i++;
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
    if (args.device_id && !so_name_ok(args.device_id)) {
        return fail("--device-id is not a name (1 to 64 of A-Z a-z 0-9 . _ -)");
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
