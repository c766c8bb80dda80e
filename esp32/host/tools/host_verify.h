/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Host-side helpers shared by secure_ota_host, the tests and the fuzz target: load a key
 * directory in the layout of `fota keys generate`, judge release files, print the verdict.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "so_core.h"

typedef struct {
    const char *device_type;
    int64_t installed_seq;
    int64_t secure_version;
    bool has_chip;
    uint32_t chip_id;
    bool has_now;
    uint64_t now;
    const char *freshness_file; /* NULL: no freshness check */
    const char *nonce;
    const char *device_id;      /* the device's own id (the freshness check's); NULL: none */
    const char *manifest;       /* NULL only with `none` */
    const char *bin;            /* NULL: manifest only */
    /** Judge as the glue judges an HTTP 304 for this manifest: the device judged it
     * already_installed before (the facts must make it the installed release; checked without
     * the clock) and kept only its so_judged_t; freshness by digest, then so_decide_unchanged.
     * Manifest only (`bin` NULL). */
    bool unchanged;
    /** Judge as the glue judges an HTTP 404 ("no release for this type"): the statement must
     * answer "none" (so_freshness_check_none), then so_decide_none with the record of
     * `manifest` (the installed release's, judged already_installed when it was installed), or
     * with none when `manifest` is NULL. No `bin`. */
    bool none;
} host_verify_args_t;

typedef struct {
    int status;                 /* SO_OK, a reason (> 0), or an error (< 0) */
    bool have_claims;           /* the manifest opened: claims and the key set reached are set */
    so_claims_t claims;
    so_manifest_info_t info;
    char error[256];
} host_verify_result_t;

/**
 * The keys of DIR with their random generator; NULL with `err` filled on failure. The
 * manifest-signing key set's version is read from DIR/keyset_version (a decimal number), 1
 * when the file does not exist.
 */
typedef struct host_keys host_keys_t;
host_keys_t *host_load_keys(const char *dir, char *err, size_t err_len);
so_keyring_t *host_ring(host_keys_t *keys);
void host_free_keys(host_keys_t *keys);
/** Read at most `limit` + 1 bytes of a file (malloc'd); NULL on error. */
uint8_t *host_read_file(const char *path, size_t limit, size_t *len);
void host_verify(const so_keyring_t *ring, const host_verify_args_t *args,
                 host_verify_result_t *result);
/** The one-line JSON verdict: {"accept":..,"reason":..,"claims":..}. */
void host_print_result(FILE *out, const host_verify_result_t *result);
