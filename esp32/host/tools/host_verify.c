/*
 * SPDX-License-Identifier: Apache-2.0
 */
#include "host_verify.h"

#include <dirent.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "mbedtls/ctr_drbg.h"
#include "mbedtls/entropy.h"
#include "mbedtls/md.h"

#define MAX_KEY_FILE (64u * 1024u)
#define STREAM_CHUNK (64u * 1024u)

struct host_keys {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    so_keyring_t *ring;
};

uint8_t *host_read_file(const char *path, size_t limit, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    uint8_t *buf = malloc(limit + 2);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    size_t n = fread(buf, 1, limit + 1, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int load_one(so_keyring_t *ring, const char *dir, const char *name,
                    int (*add)(so_keyring_t *, const uint8_t *, size_t), char *err, size_t err_len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len = 0;
    uint8_t *pem = host_read_file(path, MAX_KEY_FILE, &len);
    if (!pem) {
        snprintf(err, err_len, "%s: key file not found or unreadable", path);
        return -1;
    }
    int ret = len > MAX_KEY_FILE ? SO_ERR_KEY : add(ring, pem, len);
    free(pem);
    if (ret != SO_OK) {
        snprintf(err, err_len, "%s: not a key fit for its role (%d)", path, ret);
        return -1;
    }
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file matching `pattern`, sorted (Python's sorted(glob)). */
static int load_glob(so_keyring_t *ring, const char *dir, const char *pattern,
                     int (*add)(so_keyring_t *, const uint8_t *, size_t), size_t *count,
                     char *err, size_t err_len)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, err_len, "%s: cannot open key directory", dir);
        return -1;
    }
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64) {
        if (e->d_name[0] != '.' && fnmatch(pattern, e->d_name, 0) == 0) {
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_names);
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        if (ret == 0 && names[i]) {
            ret = load_one(ring, dir, names[i], add, err, err_len);
        }
        free(names[i]);
    }
    *count = n;
    return ret;
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* DIR/keyset_version as the reference reads it: digits around optional whitespace, 1..2^31-1. */
static int load_keyset_version(so_keyring_t *ring, const char *dir, char *err, size_t err_len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/keyset_version", dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        return 0; /* version 1 */
    }
    fclose(probe);
    size_t len = 0;
    uint8_t *text = host_read_file(path, 64, &len);
    if (!text) {
        snprintf(err, err_len, "%s: cannot read", path);
        return -1;
    }
    size_t start = 0, end = len;
    while (start < end && is_space(text[start])) {
        start++;
    }
    while (end > start && is_space(text[end - 1])) {
        end--;
    }
    uint64_t version = 0;
    bool ok = len <= 64 && end > start && end - start <= 10;
    for (size_t i = start; ok && i < end; i++) {
        ok = text[i] >= '0' && text[i] <= '9';
        version = version * 10 + (uint64_t)(text[i] - '0');
    }
    free(text);
    if (!ok || so_keyring_set_keyset_version(ring, version <= UINT32_MAX ? (uint32_t)version : 0) !=
                   SO_OK) {
        snprintf(err, err_len, "%s does not hold a key set version", path);
        return -1;
    }
    return 0;
}

/* The host's stand-in for the HMAC peripheral: HMAC-SHA256 under the key file's 32 bytes. */
static int file_hmac(void *ctx, const uint8_t *msg, size_t len, uint8_t out[32])
{
    return mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), ctx, 32, msg, len, out);
}

/* An ECIES key set (docs/formats.md §3, §10): the image key derived from the HMAC key file. */
static int load_image_key(so_keyring_t *ring, const char *dir, char *err, size_t err_len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/pre_encryption_key.pem", dir);
    FILE *probe = fopen(path, "rb");
    snprintf(path, sizeof path, "%s/pre_encryption_hmac_key.bin", dir);
    size_t len = 0;
    uint8_t *hmac_key = probe ? NULL : host_read_file(path, 64, &len);
    if (probe) {
        fclose(probe);
    }
    if (!hmac_key) {
        return load_one(ring, dir, "pre_encryption_key.pem", so_keyring_set_image_key, err,
                        err_len);
    }
    int ret = len == 32 ? so_keyring_derive_image_key(ring, file_hmac, hmac_key) : SO_ERR_KEY;
    memset(hmac_key, 0, len);
    free(hmac_key);
    if (ret != SO_OK) {
        snprintf(err, err_len, "%s: no ECIES image key derives from it (%d)", path, ret);
        return -1;
    }
    return 0;
}

static int drbg_random(void *ctx, unsigned char *out, size_t len)
{
    return mbedtls_ctr_drbg_random(ctx, out, len);
}

host_keys_t *host_load_keys(const char *dir, char *err, size_t err_len)
{
    host_keys_t *keys = calloc(1, sizeof *keys);
    if (!keys) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    mbedtls_entropy_init(&keys->entropy);
    mbedtls_ctr_drbg_init(&keys->drbg);
    const char *pers = "secure_ota_host";
    size_t count = 0;
    int ok = mbedtls_ctr_drbg_seed(&keys->drbg, mbedtls_entropy_func, &keys->entropy,
                                   (const unsigned char *)pers, strlen(pers)) == 0 &&
             so_keyring_new(drbg_random, &keys->drbg, &keys->ring) == SO_OK;
    if (!ok) {
        snprintf(err, err_len, "cannot set up the random generator");
    }
    ok = ok && load_one(keys->ring, dir, "manifest_encryption_key.pem", so_keyring_set_manifest_key,
                        err, err_len) == 0;
    ok = ok && load_image_key(keys->ring, dir, err, err_len) == 0;
    ok = ok && load_glob(keys->ring, dir, "manifest_signing_pub*.pem", so_keyring_add_signing_key,
                         &count, err, err_len) == 0;
    if (ok && count == 0) {
        snprintf(err, err_len, "%s/manifest_signing_pub.pem: key file not found", dir);
        ok = 0;
    }
    if (ok) {
        char sb[4096];
        snprintf(sb, sizeof sb, "%s/secure_boot_signing_pub.pem", dir);
        FILE *probe = fopen(sb, "rb");
        const char *name = probe ? "secure_boot_signing_pub.pem" : "secure_boot_signing_key.pem";
        if (probe) {
            fclose(probe);
        }
        ok = load_one(keys->ring, dir, name, so_keyring_set_secure_boot_key, err, err_len) == 0;
    }
    ok = ok && load_glob(keys->ring, dir, "freshness_pub*.pem", so_keyring_add_freshness_key,
                         &count, err, err_len) == 0;
    ok = ok && load_keyset_version(keys->ring, dir, err, err_len) == 0;
    if (!ok) {
        so_keyring_free(keys->ring);
        mbedtls_ctr_drbg_free(&keys->drbg);
        mbedtls_entropy_free(&keys->entropy);
        free(keys);
        return NULL;
    }
    return keys;
}

so_keyring_t *host_ring(host_keys_t *keys)
{
    return keys ? keys->ring : NULL;
}

void host_free_keys(host_keys_t *keys)
{
    if (!keys) {
        return;
    }
    so_keyring_free(keys->ring);
    mbedtls_ctr_drbg_free(&keys->drbg);
    mbedtls_entropy_free(&keys->entropy);
    free(keys);
}

static void check_bin(const so_keyring_t *ring, const host_verify_args_t *args,
                      host_verify_result_t *r)
{
    FILE *f = fopen(args->bin, "rb");
    if (!f) {
        r->status = SO_ERR_INVALID_ARG;
        snprintf(r->error, sizeof r->error, "%s: file not found", args->bin);
        return;
    }
    so_image_check_t *check = NULL;
    uint8_t *in = malloc(STREAM_CHUNK), *out = malloc(STREAM_CHUNK);
    int ret = (in && out) ? so_image_check_new(ring, &r->claims, false, &check) : SO_ERR_NO_MEM;
    while (ret == SO_OK) {
        size_t n = fread(in, 1, STREAM_CHUNK, f);
        if (n == 0) {
            break;
        }
        size_t produced = 0;
        ret = so_image_check_update(check, in, n, out, STREAM_CHUNK, &produced);
    }
    if (ret == SO_OK) {
        ret = so_image_check_finish(check, false);
    }
    fclose(f);
    so_image_check_free(check);
    free(in);
    free(out);
    r->status = ret;
}

/* --unchanged, --none: the device judged this manifest already_installed when it first received
 * it (its release was the installed one then; the time aside: it was not expired then), and
 * kept `judged` of it. */
static void judged_earlier(const uint8_t *token, size_t len, const so_device_facts_t *facts,
                           host_verify_result_t *r, so_judged_t *judged)
{
    so_device_facts_t then = *facts;
    then.has_clock = false;
    then.installed_seq = r->claims.seq;
    int first = so_decide(&r->claims, &then);
    if (first != SO_REASON_ALREADY_INSTALLED) {
        r->status = SO_ERR_INVALID_ARG;
        snprintf(r->error, sizeof r->error,
                 "--unchanged: the device would not have kept this manifest (so_decide: %s)",
                 first > 0 ? so_reason_name(first) : first == SO_OK ? "an update" : "error");
        return;
    }
    r->status = so_judged_init(judged, token, len, &r->claims);
}

static int check_freshness(const so_keyring_t *ring, const host_verify_args_t *args,
                           const uint8_t *token, size_t len, const so_judged_t *judged,
                           host_verify_result_t *r)
{
    size_t slen = 0;
    uint8_t *statement = host_read_file(args->freshness_file, SO_MAX_STATEMENT_SIZE, &slen);
    if (!statement) {
        snprintf(r->error, sizeof r->error, "%s: file not found", args->freshness_file);
        return SO_ERR_INVALID_ARG;
    }
    const char *nonce = args->nonce ? args->nonce : "";
    const char *id = args->device_id;
    int ret = args->none ? so_freshness_check_none(ring, statement, slen, nonce, args->device_type,
                                                   id)
              : judged ? so_freshness_check_digest(ring, statement, slen, judged->sha256_hex, nonce,
                                                 args->device_type, id)
                     : so_freshness_check(ring, statement, slen, token, len, nonce,
                                          args->device_type, id);
    free(statement);
    return ret;
}

/* --none: an HTTP 404, with the record of the installed release's manifest if one is given */
static void verify_none(const so_keyring_t *ring, const host_verify_args_t *args,
                        host_verify_result_t *r)
{
    so_device_facts_t facts = {
        .device_type = args->device_type,
        .chip_id = args->chip_id,
        .installed_seq = args->installed_seq,
        .secure_version = args->secure_version,
        .has_clock = args->has_now,
        .now = args->now,
    };
    so_judged_t judged;
    bool have_judged = false;
    if (args->manifest) {
        size_t len = 0;
        uint8_t *token = host_read_file(args->manifest, SO_MAX_MANIFEST_SIZE, &len);
        if (!token) {
            r->status = SO_ERR_INVALID_ARG;
            snprintf(r->error, sizeof r->error, "%s: file not found", args->manifest);
            return;
        }
        r->status = so_manifest_open(ring, token, len, &r->claims, &r->info, NULL);
        r->have_claims = (r->status == SO_OK);
        if (!args->has_chip) {
            facts.chip_id = r->claims.chip_id;
        }
        if (r->status == SO_OK) {
            judged_earlier(token, len, &facts, r, &judged);
            have_judged = r->status == SO_OK;
        }
        free(token);
    }
    if (r->status == SO_OK && args->freshness_file) {
        r->status = check_freshness(ring, args, NULL, 0, NULL, r);
    }
    if (r->status == SO_OK) {
        r->status = so_decide_none(have_judged ? &judged : NULL, &facts);
    }
}

void host_verify(const so_keyring_t *ring, const host_verify_args_t *args,
                 host_verify_result_t *r)
{
    memset(r, 0, sizeof *r);
    if ((args->unchanged || args->none) && args->bin) {
        r->status = SO_ERR_INVALID_ARG;
        snprintf(r->error, sizeof r->error, "--unchanged and --none judge no binary");
        return;
    }
    if (args->none) {
        verify_none(ring, args, r);
        if (r->status < 0 && !r->error[0]) {
            snprintf(r->error, sizeof r->error, "internal error %d", r->status);
        }
        return;
    }
    size_t len = 0;
    uint8_t *token = host_read_file(args->manifest, SO_MAX_MANIFEST_SIZE, &len);
    if (!token) {
        r->status = SO_ERR_INVALID_ARG;
        snprintf(r->error, sizeof r->error, "%s: file not found", args->manifest);
        return;
    }
    r->status = so_manifest_open(ring, token, len, &r->claims, &r->info, NULL);
    r->have_claims = (r->status == SO_OK);
    so_device_facts_t facts = {
        .device_type = args->device_type,
        .chip_id = args->has_chip ? args->chip_id : r->claims.chip_id,
        .installed_seq = args->installed_seq,
        .secure_version = args->secure_version,
        .has_clock = args->has_now,
        .now = args->now,
    };
    so_judged_t judged;
    if (r->status == SO_OK && args->unchanged) {
        judged_earlier(token, len, &facts, r, &judged);
    }
    if (r->status == SO_OK && args->freshness_file) {
        r->status = check_freshness(ring, args, token, len, args->unchanged ? &judged : NULL, r);
    }
    free(token);
    if (r->status == SO_OK) {
        r->status = args->unchanged ? so_decide_unchanged(&judged, &facts)
                                    : so_decide(&r->claims, &facts);
    }
    if (r->status == SO_OK && args->bin) {
        check_bin(ring, args, r);
    }
    if (r->status < 0 && !r->error[0]) {
        snprintf(r->error, sizeof r->error, "internal error %d", r->status);
    }
}

/* A JSON string in pure ASCII (non-ASCII as \uXXXX, like Python's json.dumps); `s` is valid
 * UTF-8 (every string printed here passed the strict checks). */
static void print_string(FILE *out, const char *s)
{
    fputc('"', out);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp = *p;
        int extra = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : cp >= 0xC0 ? 1 : 0;
        if (extra) {
            cp &= 0x3Fu >> extra;
        }
        p++;
        for (int i = 0; i < extra && (*p & 0xC0) == 0x80; i++, p++) {
            cp = (cp << 6) | (*p & 0x3Fu);
        }
        if (cp == '"' || cp == '\\') {
            fprintf(out, "\\%c", (int)cp);
        } else if (cp >= 0x20 && cp < 0x7F) {
            fputc((int)cp, out);
        } else if (cp >= 0x10000) {
            cp -= 0x10000;
            fprintf(out, "\\u%04x\\u%04x", 0xD800u + (cp >> 10), 0xDC00u + (cp & 0x3FFu));
        } else {
            fprintf(out, "\\u%04x", cp);
        }
    }
    fputc('"', out);
}

void host_print_result(FILE *out, const host_verify_result_t *r)
{
    fprintf(out, "{\"accept\": %s, \"reason\": ", r->status == SO_OK ? "true" : "false");
    if (r->status > 0) {
        print_string(out, so_reason_name(r->status));
    } else {
        fputs("null", out);
    }
    fputs(", \"claims\": ", out);
    if (!r->have_claims) {
        fputs("null", out);
    } else {
        const so_claims_t *c = &r->claims;
        fprintf(out, "{\"fmt\": %llu, \"fw_name\": ", (unsigned long long)c->fmt);
        print_string(out, c->fw_name);
        fputs(", \"device_type\": ", out);
        print_string(out, c->device_type);
        fprintf(out, ", \"seq\": %u, \"version\": ", (unsigned)c->seq);
        print_string(out, c->version);
        fputs(", \"project\": ", out);
        print_string(out, c->project);
        fputs(", \"idf_ver\": ", out);
        print_string(out, c->idf_ver);
        fprintf(out, ", \"secure_version\": %u, \"chip_id\": %u, \"app_elf_sha256\": \"%s\"",
                (unsigned)c->secure_version, (unsigned)c->chip_id, c->app_elf_sha256);
        fprintf(out, ", \"image_size\": %u, \"image_sha256\": \"%s\", \"enc_size\": %u",
                (unsigned)c->image_size, c->image_sha256, (unsigned)c->enc_size);
        fprintf(out, ", \"enc_sha256\": \"%s\", \"secure_boot\": \"%s\", \"iat\": %llu",
                c->enc_sha256, so_secure_boot_name(c->secure_boot), (unsigned long long)c->iat);
        if (c->has_exp) {
            fprintf(out, ", \"exp\": %llu", (unsigned long long)c->exp);
        }
        fputc('}', out);
    }
    /* the key set the manifest was verified under (docs/formats.md §4.4), kids sorted */
    fputs(", \"keyset\": ", out);
    if (!r->have_claims) {
        fputs("null", out);
    } else {
        const so_manifest_info_t *info = &r->info;
        const char *kids[SO_MAX_TRUSTED_KEYS];
        for (size_t i = 0; i < info->keyset_count; i++) {
            kids[i] = info->keyset_kids[i];
        }
        qsort(kids, info->keyset_count, sizeof kids[0], cmp_names);
        fprintf(out, "{\"version\": %u, \"kids\": [", (unsigned)info->keyset_version);
        for (size_t i = 0; i < info->keyset_count; i++) {
            fprintf(out, "%s\"%s\"", i ? ", " : "", kids[i]);
        }
        fputs("]}", out);
    }
    fputs("}\n", out);
}
