/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The resumable download path. esp_https_ota refuses to resume a pre-encrypted download
 * (ESP_ERR_NOT_SUPPORTED), so an ESP32 on a flaky link would start again from zero after every
 * drop or reboot. Here the binary is fetched with HTTP Range requests of cfg->chunk_size bytes
 * and decrypted by the core's own AES-GCM (so_encimg); the plaintext goes to the next OTA slot
 * sector by sector (esp_partition_write, which encrypts when flash encryption is on). Every
 * CONFIG_SECURE_OTA_RESUME_CHECKPOINT_KB (64 KiB when resumable is off in Kconfig) a checkpoint
 * (release, slot, file header, bytes written) goes to NVS. After a reboot the core's state is
 * rebuilt from the slot: the written plaintext is read back and re-encrypted (CTR) to recompute
 * GHASH and the SHA-256 of the encrypted and plain streams; no key or GHASH state is ever
 * stored. The file format is unchanged. The slot becomes bootable only after every check of
 * docs/formats.md §8.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_check.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_timer.h"
#include "nvs.h"
#include "sdkconfig.h"
#include "secure_ota_priv.h"

static const char *TAG = "secure_ota";

#define SECTOR 4096u
/* Kconfig defines the checkpoint interval only with CONFIG_SECURE_OTA_RESUMABLE on; a caller can
 * still choose this path at run time (cfg->resumable), and then gets the Kconfig default. */
#ifdef CONFIG_SECURE_OTA_RESUME_CHECKPOINT_KB
#define CHECKPOINT_KB CONFIG_SECURE_OTA_RESUME_CHECKPOINT_KB
#else
#define CHECKPOINT_KB 64
#endif
#define RESUME_KEY "resume"
#define RESUME_MAGIC 0x5E0A7E57u

typedef struct {
    uint32_t magic;
    uint32_t seq;
    uint32_t partition;      /* slot address */
    uint32_t written;        /* plaintext bytes durable in the slot, a multiple of SECTOR */
    char enc_sha256[65];
    uint8_t header[SO_ENC_HEADER_SIZE];
} resume_state_t;

typedef struct {
    const esp_partition_t *slot;
    so_image_check_t *check;
    resume_state_t state;
    uint64_t file_offset;    /* next byte of the .bin expected */
    uint8_t *sector;
    size_t fill;
    uint32_t flash_offset;   /* where `sector` goes */
    uint8_t plain[2048];
    int reason;
} download_t;

static void load_state(resume_state_t *state)
{
    nvs_handle_t nvs;
    size_t len = sizeof *state;
    memset(state, 0, sizeof *state);
    if (nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READONLY, &nvs) != ESP_OK) {
        return;
    }
    if (nvs_get_blob(nvs, RESUME_KEY, state, &len) != ESP_OK || len != sizeof *state) {
        memset(state, 0, sizeof *state);
    }
    nvs_close(nvs);
}

static esp_err_t save_state(const resume_state_t *state)
{
    nvs_handle_t nvs;
    ESP_RETURN_ON_ERROR(nvs_open(SECURE_OTA_NVS_NAMESPACE, NVS_READWRITE, &nvs), TAG, "nvs_open");
    esp_err_t err = state ? nvs_set_blob(nvs, RESUME_KEY, state, sizeof *state)
                          : nvs_erase_key(nvs, RESUME_KEY);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        err = ESP_OK;
    }
    if (err == ESP_OK) {
        err = nvs_commit(nvs);
    }
    nvs_close(nvs);
    return err;
}

/* Write the sector buffer (padded to 16 bytes for flash encryption) at flash_offset. */
static esp_err_t flush_sector(download_t *d)
{
    if (!d->fill) {
        return ESP_OK;
    }
    size_t len = (d->fill + 15u) & ~(size_t)15u;
    memset(d->sector + d->fill, 0xFF, len - d->fill);
    ESP_RETURN_ON_ERROR(esp_partition_erase_range(d->slot, d->flash_offset, SECTOR), TAG,
                        "erase at %" PRIu32, d->flash_offset);
    ESP_RETURN_ON_ERROR(esp_partition_write(d->slot, d->flash_offset, d->sector, len), TAG,
                        "write at %" PRIu32, d->flash_offset);
    d->flash_offset += SECTOR;
    d->fill = 0;
    uint32_t every = (uint32_t)CHECKPOINT_KB * 1024u;
    if (every && d->flash_offset % every == 0) {
        d->state.written = d->flash_offset;
        ESP_RETURN_ON_ERROR(save_state(&d->state), TAG, "checkpoint");
    }
    return ESP_OK;
}

static esp_err_t on_cipher(void *ctx, const uint8_t *data, size_t len)
{
    download_t *d = ctx;
    while (len) {
        size_t n = len < sizeof d->plain ? len : sizeof d->plain;
        if (d->file_offset < SO_ENC_HEADER_SIZE) {
            size_t h = SO_ENC_HEADER_SIZE - (size_t)d->file_offset;
            h = h < n ? h : n;
            memcpy(d->state.header + d->file_offset, data, h);
        }
        size_t produced = 0;
        int r = so_image_check_update(d->check, data, n, d->plain, sizeof d->plain, &produced);
        if (r != SO_OK) {
            d->reason = r;
            return secure_ota_err_from_core(r);
        }
        d->file_offset += n;
        for (size_t i = 0; i < produced;) {
            size_t room = SECTOR - d->fill;
            size_t take = produced - i < room ? produced - i : room;
            memcpy(d->sector + d->fill, d->plain + i, take);
            d->fill += take;
            i += take;
            if (d->fill == SECTOR) {
                ESP_RETURN_ON_ERROR(flush_sector(d), TAG, "flash");
            }
        }
        data += n;
        len -= n;
    }
    return ESP_OK;
}

/* Rebuild the core's state from the slot; false if the checkpoint cannot be used. */
static bool resume_from_slot(download_t *d)
{
    resume_state_t *s = &d->state;
    if (so_image_check_resume(d->check, s->header) != SO_OK) {
        return false;
    }
    const int64_t replay_start = esp_timer_get_time();
    for (uint32_t off = 0; off < s->written; off += SECTOR) {
        if (esp_partition_read(d->slot, off, d->sector, SECTOR) != ESP_OK ||
            so_image_check_replay(d->check, d->sector, SECTOR) != SO_OK) {
            return false;
        }
    }
    secure_ota_log_metric("resume_replay_us", esp_timer_get_time() - replay_start);
    d->file_offset = SO_ENC_HEADER_SIZE + (uint64_t)s->written;
    d->flash_offset = s->written;
    ESP_LOGI(TAG, "resuming after %" PRIu32 " bytes already in the slot", s->written);
    return true;
}

static esp_err_t start(download_t *d, const so_keyring_t *ring, const so_claims_t *claims,
                       bool try_resume)
{
    so_image_check_free(d->check);
    d->check = NULL;
    ESP_RETURN_ON_ERROR(secure_ota_err_from_core(so_image_check_new(ring, claims, false, &d->check)),
                        TAG, "image check");
    resume_state_t saved;
    load_state(&saved);
    bool usable = try_resume && saved.magic == RESUME_MAGIC && saved.seq == claims->seq &&
                  saved.partition == d->slot->address && saved.written % SECTOR == 0 &&
                  saved.written < claims->image_size &&
                  strncmp(saved.enc_sha256, claims->enc_sha256, 65) == 0;
    d->file_offset = 0;
    d->flash_offset = 0;
    d->fill = 0;
    if (usable && saved.written) {
        d->state = saved;
        if (resume_from_slot(d)) {
            return ESP_OK;
        }
        ESP_LOGW(TAG, "checkpoint unusable, downloading from the start");
        return start(d, ring, claims, false);
    }
    memset(&d->state, 0, sizeof d->state);
    d->state.magic = RESUME_MAGIC;
    d->state.seq = claims->seq;
    d->state.partition = d->slot->address;
    memcpy(d->state.enc_sha256, claims->enc_sha256, sizeof d->state.enc_sha256);
    return ESP_OK;
}

esp_err_t secure_ota_resumable_update(const secure_ota_config_t *cfg, const so_keyring_t *ring,
                                      const so_claims_t *claims, const char *url)
{
    esp_err_t ret = ESP_OK;
    download_t *d = calloc(1, sizeof *d);
    ESP_RETURN_ON_FALSE(d, ESP_ERR_NO_MEM, TAG, "no memory");
    d->slot = esp_ota_get_next_update_partition(NULL);
    d->sector = malloc(SECTOR);
    ESP_GOTO_ON_FALSE(d->slot && d->sector, ESP_ERR_NO_MEM, done, TAG, "slot or buffer");
    ESP_GOTO_ON_FALSE(d->slot != esp_ota_get_running_partition(), ESP_ERR_INVALID_STATE, done, TAG,
                      "refusing to write the running slot");
    ESP_GOTO_ON_ERROR(start(d, ring, claims, true), done, TAG, "start");

    size_t chunk = cfg->chunk_size ? cfg->chunk_size : CONFIG_SECURE_OTA_CHUNK_SIZE;
    if (!chunk) {
        chunk = claims->enc_size;
    }
    while (d->file_offset < claims->enc_size) {
        uint64_t last = d->file_offset + chunk - 1;
        if (last >= claims->enc_size) {
            last = claims->enc_size - 1;
        }
        char range[48];
        snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, d->file_offset, last);
        secure_ota_request_t req = {
            .url = url,
            .range = range,
            .max_body = (size_t)(last - d->file_offset + 1),
            .sink = on_cipher,
            .sink_ctx = d,
        };
        secure_ota_headers_t *headers = calloc(1, sizeof *headers);
        ESP_GOTO_ON_FALSE(headers, ESP_ERR_NO_MEM, done, TAG, "no memory");
        int status = 0;
        size_t got = 0;
        uint64_t before = d->file_offset;
        ret = secure_ota_http_get(cfg, &req, headers, &status, &got);
        free(headers);
        if (d->reason) {
            ret = secure_ota_err_from_core(d->reason);
            goto refused;
        }
        ESP_GOTO_ON_ERROR(ret, done, TAG, "download (will resume from the last checkpoint)");
        ESP_GOTO_ON_FALSE(status == 206 || (status == 200 && before == 0 && got == claims->enc_size),
                          SECURE_OTA_ERR_UNEXPECTED_STATUS, done, TAG, "binary: HTTP %d", status);
        ESP_GOTO_ON_FALSE(d->file_offset == last + 1 || d->file_offset == claims->enc_size,
                          SECURE_OTA_ERR_SERVER, done, TAG, "short range answer");
    }
    ESP_GOTO_ON_ERROR(flush_sector(d), done, TAG, "flash");
    int r = so_image_check_finish(d->check, false);
    if (r != SO_OK) {
        ret = secure_ota_err_from_core(r);
        goto refused;
    }
    /* every check of §8 passed: esp_ota_set_boot_partition validates the image once more
     * (esp_image_verify, secure boot) and applies the anti-rollback eFuse check */
    ESP_GOTO_ON_ERROR(esp_ota_set_boot_partition(d->slot), done, TAG, "set boot partition");
    save_state(NULL);
    goto done;
refused:
    ESP_LOGE(TAG, "binary refused: %s", secure_ota_err_to_name(ret));
    save_state(NULL);
    esp_partition_erase_range(d->slot, 0, SECTOR); /* leave nothing that looks like an image */
done:
    so_image_check_free(d->check);
    free(d->sector);
    free(d);
    return ret;
}
