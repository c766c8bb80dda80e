/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * secure_ota: signed + encrypted firmware updates for ESP32 devices (ESP-IDF >= 5.2).
 *
 * A release is a manifest (JWE around a JWS, docs/formats.md §4) and an esp_encrypted_img
 * binary (§3). secure_ota_check_for_update() fetches the newest manifest over TLS (CA pinned,
 * hostname verified), opens it with the device's keys, checks the server's freshness statement
 * and decides (§6). secure_ota_perform_update() downloads that release's binary by its signed
 * sequence number, decrypts it into the next OTA slot while hashing the encrypted and the
 * decrypted streams, runs every image check of §8 and only then makes the slot bootable.
 * After the reboot the application runs its self-test and calls secure_ota_mark_running_valid().
 *
 * Key rotation (docs/formats.md §4.4): manifests carry the statements that lead from older
 * manifest-signing key sets to the author's current one. The device walks them from its own
 * set (the embedded keys, or a newer set stored in NVS) and, once a release verified under a
 * newer set has been installed, booted and confirmed (secure_ota_mark_running_valid()), stores
 * that set in NVS: from then on only its keys are trusted (a key left out is revoked).
 *
 * Reports (CONFIG_SECURE_OTA_REPORTS, docs/formats.md §11): the device tells the server
 * "installed", "confirmed", "rolled_back", "rejected" (with the reason code) and "failed", each
 * report signed by the device's own P-256 key (generated on first use, kept in NVS) and
 * numbered by a counter saved in NVS before signing. Reporting is best effort: it never fails
 * an update; the last report that could not be sent waits in NVS for the next check.
 *
 * No function keeps state between calls: everything lives in the caller's config/info structs,
 * in NVS (installed sequence number, key set, resume checkpoint, report key, counter and
 * pending report) and in the OTA slots.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "so_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- error codes ----------------------------------------------------------------------- */

/** Base of this component's esp_err_t codes (outside every ESP-IDF range). */
#define SECURE_OTA_ERR_BASE 0x1F000

/** One code per reason code of docs/formats.md §8: SECURE_OTA_ERR_BASE + so_reason_t. */
#define SECURE_OTA_ERR_MANIFEST_TOO_LARGE            (SECURE_OTA_ERR_BASE + SO_REASON_MANIFEST_TOO_LARGE)
#define SECURE_OTA_ERR_MANIFEST_MALFORMED            (SECURE_OTA_ERR_BASE + SO_REASON_MANIFEST_MALFORMED)
#define SECURE_OTA_ERR_UNSUPPORTED_ALGORITHM         (SECURE_OTA_ERR_BASE + SO_REASON_UNSUPPORTED_ALGORITHM)
#define SECURE_OTA_ERR_MANIFEST_DECRYPT_FAILED       (SECURE_OTA_ERR_BASE + SO_REASON_MANIFEST_DECRYPT_FAILED)
#define SECURE_OTA_ERR_UNKNOWN_KEY                   (SECURE_OTA_ERR_BASE + SO_REASON_UNKNOWN_KEY)
#define SECURE_OTA_ERR_BAD_SIGNATURE                 (SECURE_OTA_ERR_BASE + SO_REASON_BAD_SIGNATURE)
#define SECURE_OTA_ERR_INVALID_CLAIMS                (SECURE_OTA_ERR_BASE + SO_REASON_INVALID_CLAIMS)
#define SECURE_OTA_ERR_UNSUPPORTED_FORMAT            (SECURE_OTA_ERR_BASE + SO_REASON_UNSUPPORTED_FORMAT)
#define SECURE_OTA_ERR_WRONG_DEVICE_TYPE             (SECURE_OTA_ERR_BASE + SO_REASON_WRONG_DEVICE_TYPE)
#define SECURE_OTA_ERR_WRONG_CHIP                    (SECURE_OTA_ERR_BASE + SO_REASON_WRONG_CHIP)
#define SECURE_OTA_ERR_ALREADY_INSTALLED             (SECURE_OTA_ERR_BASE + SO_REASON_ALREADY_INSTALLED)
#define SECURE_OTA_ERR_ROLLBACK                      (SECURE_OTA_ERR_BASE + SO_REASON_ROLLBACK)
#define SECURE_OTA_ERR_SECURE_VERSION_TOO_LOW        (SECURE_OTA_ERR_BASE + SO_REASON_SECURE_VERSION_TOO_LOW)
#define SECURE_OTA_ERR_EXPIRED                       (SECURE_OTA_ERR_BASE + SO_REASON_EXPIRED)
#define SECURE_OTA_ERR_IMAGE_TOO_LARGE               (SECURE_OTA_ERR_BASE + SO_REASON_IMAGE_TOO_LARGE)
#define SECURE_OTA_ERR_FRESHNESS_INVALID             (SECURE_OTA_ERR_BASE + SO_REASON_FRESHNESS_INVALID)
#define SECURE_OTA_ERR_STALE_MANIFEST                (SECURE_OTA_ERR_BASE + SO_REASON_STALE_MANIFEST)
#define SECURE_OTA_ERR_IMAGE_SIZE_MISMATCH           (SECURE_OTA_ERR_BASE + SO_REASON_IMAGE_SIZE_MISMATCH)
#define SECURE_OTA_ERR_ENC_DIGEST_MISMATCH           (SECURE_OTA_ERR_BASE + SO_REASON_ENC_DIGEST_MISMATCH)
#define SECURE_OTA_ERR_IMAGE_HEADER_INVALID          (SECURE_OTA_ERR_BASE + SO_REASON_IMAGE_HEADER_INVALID)
#define SECURE_OTA_ERR_IMAGE_DECRYPT_FAILED          (SECURE_OTA_ERR_BASE + SO_REASON_IMAGE_DECRYPT_FAILED)
#define SECURE_OTA_ERR_IMAGE_DIGEST_MISMATCH         (SECURE_OTA_ERR_BASE + SO_REASON_IMAGE_DIGEST_MISMATCH)
#define SECURE_OTA_ERR_IMAGE_INVALID                 (SECURE_OTA_ERR_BASE + SO_REASON_IMAGE_INVALID)
#define SECURE_OTA_ERR_SECURE_BOOT_SIGNATURE_INVALID (SECURE_OTA_ERR_BASE + SO_REASON_SECURE_BOOT_SIGNATURE_INVALID)
/* the server's answer could not be used (no release was judged) */
#define SECURE_OTA_ERR_CONNECTION_FAILED             (SECURE_OTA_ERR_BASE + SO_REASON_CONNECTION_FAILED)
#define SECURE_OTA_ERR_TIMEOUT                       (SECURE_OTA_ERR_BASE + SO_REASON_TIMEOUT)
#define SECURE_OTA_ERR_UNEXPECTED_STATUS             (SECURE_OTA_ERR_BASE + SO_REASON_UNEXPECTED_STATUS)
#define SECURE_OTA_ERR_BAD_HEADER                    (SECURE_OTA_ERR_BASE + SO_REASON_BAD_HEADER)
#define SECURE_OTA_ERR_UNSUPPORTED_ENCODING          (SECURE_OTA_ERR_BASE + SO_REASON_UNSUPPORTED_ENCODING)
#define SECURE_OTA_ERR_REDIRECT_REFUSED              (SECURE_OTA_ERR_BASE + SO_REASON_REDIRECT_REFUSED)
/** A key given in the config is missing, unreadable, or of the wrong type or size. */
#define SECURE_OTA_ERR_KEY                           (SECURE_OTA_ERR_BASE + 0x80)
/** The server answered with an unexpected status, length or header. */
#define SECURE_OTA_ERR_SERVER                        (SECURE_OTA_ERR_BASE + 0x81)

/** True if `err` is one of the reason codes above. */
static inline bool secure_ota_err_is_reason(esp_err_t err)
{
    return err > SECURE_OTA_ERR_BASE && err < SECURE_OTA_ERR_BASE + SO_REASON_COUNT;
}

/**
 * The reason code's name ("rollback", "bad_signature", ...) for a SECURE_OTA_ERR_* reason,
 * else esp_err_to_name(err).
 */
const char *secure_ota_err_to_name(esp_err_t err);

/* ---- configuration ----------------------------------------------------------------------- */

/** PEM text and its length; embedded with EMBED_TXTFILES, `len` counts the final NUL. */
typedef struct {
    const char *pem;
    size_t len;
} secure_ota_pem_t;

typedef struct {
    /** "https://host:port" of the update server, no trailing slash. */
    const char *server_url;
    /** The device type releases must name (docs/formats.md §5 name). */
    const char *device_type;
    /** PEM of the CA that issued the server's certificate (pinned; hostname is verified). */
    secure_ota_pem_t ca_cert;
    /** RSA-4096 (or 3072) private key that decrypts manifests. */
    secure_ota_pem_t manifest_key;
    /** RSA-3072 private key that unwraps image keys (esp_encrypted_img). Unused with
     * CONFIG_SECURE_OTA_IMAGE_KEY_FROM_HMAC (ECIES: derived from an eFuse HMAC key). */
    secure_ota_pem_t image_key;
    /** Trusted manifest-signing public keys (RSA-3072/4096 or P-256), chosen by kid: the key
     * set embedded in the firmware. A newer set stored in NVS replaces it (§4.4). */
    const secure_ota_pem_t *signing_keys;
    size_t signing_key_count;
    /** Version of the embedded key set (0: CONFIG_SECURE_OTA_KEYSET_VERSION). */
    uint32_t keyset_version;
    /** Trusted freshness public keys (P-256); with none the freshness check is off. */
    const secure_ota_pem_t *freshness_keys;
    size_t freshness_key_count;
    /** The secure boot public key (RSA-3072, P-256 or P-384) for the §8 step 7 check. */
    secure_ota_pem_t secure_boot_key;
    /** HTTP timeout per request in ms (0: CONFIG_SECURE_OTA_HTTP_TIMEOUT_MS). */
    int timeout_ms;
    /** Bytes per HTTP Range request of the binary (0: CONFIG_SECURE_OTA_CHUNK_SIZE). */
    size_t chunk_size;
    /** Download with the resumable decryptor (else esp_https_ota + esp_encrypted_img). */
    bool resumable;
    /** The device's clock is trusted (SNTP over an authenticated channel): check `exp`. */
    bool trusted_clock;
    /** Bearer token sent as "Authorization: Bearer ..." on every request (NULL: none, for a
     * server with device_auth = open). secure_ota_config_from_kconfig() fills it from the NVS
     * string "fota_token" (namespace "secure_ota"), else CONFIG_SECURE_OTA_DEVICE_TOKEN. */
    const char *device_token;
    /** The device's id (a §5 name), sent with every poll (deviceId: the server decides per
     * device whether a staged rollout's release is offered) and carried by reports
     * (docs/formats.md §11). NULL: CONFIG_SECURE_OTA_DEVICE_ID, or when that is empty
     * CONFIG_IDF_TARGET "-" and the 12 lowercase hex digits of the base MAC (see
     * secure_ota_device_id()). */
    const char *device_id;
} secure_ota_config_t;

/** The config from Kconfig; keys and CA must still be filled in by the application. */
void secure_ota_config_from_kconfig(secure_ota_config_t *cfg);

/** What secure_ota_check_for_update() found. Pass it unchanged to secure_ota_perform_update(). */
typedef struct {
    /** An acceptable update exists (its verified claims are in `claims`). */
    bool available;
    /** ESP_OK, or the SECURE_OTA_ERR_* reason the newest release was not taken for. */
    esp_err_t verdict;
    /** The verified claims of the newest manifest (valid when `have_claims`). */
    bool have_claims;
    so_claims_t claims;
    /** Release id announced by the server (X-Fota-Release), 0 if absent. */
    uint32_t server_release_id;
    /** Version of the manifest-signing key set the manifest was verified under (valid when
     * `have_claims`): higher than the device's own when the manifest's key rotations led to a
     * newer set, which is then stored at secure_ota_mark_running_valid() after the update. */
    uint32_t keyset_version;
} secure_ota_update_info_t;

/* ---- API --------------------------------------------------------------------------------- */

/**
 * @brief Ask the update server for its newest manifest and judge it.
 *
 * GET {server_url}/update/newest/manifest?deviceType=T&deviceId=D[&nonce=N] (D: the id of
 * secure_ota_device_id(), so that a staged rollout's release is offered to the devices of its
 * current stage), with If-None-Match set to the SHA-256 of the last manifest judged not to be
 * an update. The manifest is opened (§4, §5), the freshness statement checked (§7, when
 * freshness keys are configured: it must name exactly this id) and the decision
 * taken (§6) against the installed sequence number (NVS), the chip, the anti-rollback eFuse
 * and the size of the next OTA slot. The manifest-signing key set is the newest of the embedded
 * keys and the set stored in NVS; when the manifest's key rotations lead to a newer set and the
 * release is an update, that set is staged in NVS (not yet trusted) for
 * secure_ota_mark_running_valid().
 *
 * With CONFIG_SECURE_OTA_REPORTS it first sends the report left pending by an earlier call and
 * the outcome secure_ota_mark_running_valid() remembered, and reports a refused release
 * ("rejected" with its reason code). Reports never change the result; each costs at most one
 * HTTP timeout when the server cannot be reached.
 *
 * @note Opening the manifest decrypts its RSA-4096 key without blocking: seconds on chips
 *       whose RSA accelerator stops below 4096 bits (ESP32-C3). Call this function (and
 *       secure_ota_perform_update()) from a task at CONFIG_SECURE_OTA_TASK_PRIORITY (default
 *       tskIDLE_PRIORITY), so that the IDLE task keeps running and the task watchdog is fed.
 *
 * @param[in]  cfg  configuration (keys, server, device type)
 * @param[out] out  result; `out->available` tells whether to call secure_ota_perform_update()
 *
 * @return
 *    - ESP_OK: the check completed; an update is available, or there is nothing new (404 no
 *      release, 304 unchanged, or SECURE_OTA_ERR_ALREADY_INSTALLED in `out->verdict`)
 *    - SECURE_OTA_ERR_* reason: the newest release was refused (also in `out->verdict`)
 *    - SECURE_OTA_ERR_KEY: a configured key cannot be used
 *    - SECURE_OTA_ERR_UNEXPECTED_STATUS: an HTTP status other than 200, 304 or 404
 *    - SECURE_OTA_ERR_UNSUPPORTED_ENCODING: a Content-Encoding other than identity
 *    - SECURE_OTA_ERR_SERVER: a body whose length differs from its Content-Length
 *    - ESP_ERR_INVALID_ARG: missing configuration, an invalid device type or device id
 *    - errors of secure_ota_device_id() (esp_read_mac) when the id comes from the MAC
 *    - ESP_ERR_NO_MEM: out of memory
 *    - other esp_http_client / NVS errors for transport and storage failures
 */
esp_err_t secure_ota_check_for_update(const secure_ota_config_t *cfg,
                                      secure_ota_update_info_t *out);

/**
 * @brief Download, decrypt, check and install the release found by secure_ota_check_for_update().
 *
 * GET {server_url}/api/v1/device-types/{type}/releases/{seq}/binary, with seq from the signed
 * claims. The binary is refused as soon as it runs past enc_size; at the end the checks of §8
 * run in order, and only if all pass is the new slot made bootable (esp_https_ota_finish, or
 * esp_ota_set_boot_partition on the resumable path). The sequence number is recorded as
 * pending in NVS and becomes the installed one in secure_ota_mark_running_valid().
 * With `cfg->resumable`, an interrupted download continues after a reboot from the bytes
 * already written (HTTP Range), without re-downloading them.
 * With CONFIG_SECURE_OTA_REPORTS it reports "installed" once the slot is set to boot,
 * "rejected" (with the reason code) when the binary is refused, and "failed" (with the error's
 * name) for any other failure; reports never change the result.
 *
 * @param[in] cfg   the same configuration as for the check
 * @param[in] info  the result of the check, with `available` true
 *
 * @return
 *    - ESP_OK: the new image is verified and selected for the next boot; call esp_restart()
 *    - SECURE_OTA_ERR_IMAGE_* / SECURE_OTA_ERR_ENC_DIGEST_MISMATCH /
 *      SECURE_OTA_ERR_SECURE_BOOT_SIGNATURE_INVALID: the binary was refused (nothing bootable
 *      was written)
 *    - SECURE_OTA_ERR_KEY, SECURE_OTA_ERR_SERVER, ESP_ERR_INVALID_ARG, ESP_ERR_NO_MEM
 *    - ESP_ERR_OTA_VALIDATE_FAILED, ESP_ERR_OTA_SMALL_SEC_VER (anti-rollback) and other
 *      esp_https_ota / esp_ota_ops / esp_http_client errors
 */
esp_err_t secure_ota_perform_update(const secure_ota_config_t *cfg,
                                    const secure_ota_update_info_t *info);

/**
 * @brief After a successful self-test of a freshly installed image: keep it.
 *
 * Cancels the pending app rollback (esp_ota_mark_app_valid_cancel_rollback, which also burns
 * the anti-rollback eFuse up to the image's secure_version when CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK
 * is set) and records the pending sequence number as installed, if this image is the one that
 * was pending. If that release was verified under a newer manifest-signing key set (key
 * rotation), the set staged by secure_ota_check_for_update() becomes the device's key set
 * (NVS); a release that did not boot changes nothing. With CONFIG_SECURE_OTA_REPORTS, the
 * outcome ("confirmed", or "rolled_back" when the image running is not the one installed) is
 * remembered in NVS and reported by the next secure_ota_check_for_update(). Call it at every
 * boot, after the self-test, so that a rollback is reported too.
 *
 * @return
 *    - ESP_OK
 *    - errors of esp_ota_mark_app_valid_cancel_rollback and NVS
 */
esp_err_t secure_ota_mark_running_valid(void);

/**
 * @brief The sequence number of the installed release (0 if none was ever recorded).
 */
esp_err_t secure_ota_get_installed_seq(uint32_t *seq);

/**
 * @brief The device id polls send and reports carry: cfg->device_id, else
 *        CONFIG_SECURE_OTA_DEVICE_ID, else
 *        CONFIG_IDF_TARGET "-" and the 12 lowercase hex digits of the base MAC (esp_read_mac
 *        with ESP_MAC_BASE: the factory MAC in eFuse unless the application set another base
 *        MAC), e.g. "esp32c3-7cdfa1e2f3a4". With device_auth =
 *        device-token, the device's token is the per-device token named like this id.
 *
 * @param[in]  cfg  the configuration, or NULL for the Kconfig/MAC id
 * @param[out] out  the id and a NUL (SO_MAX_NAME_LENGTH + 1 bytes are always enough)
 * @param[in]  cap  size of `out`
 *
 * @return
 *    - ESP_OK
 *    - ESP_ERR_INVALID_ARG: `out` is NULL, or the configured id is not a valid name
 *    - ESP_ERR_INVALID_SIZE: `cap` is too small for the id
 *    - errors of esp_read_mac
 */
esp_err_t secure_ota_device_id(const secure_ota_config_t *cfg, char *out, size_t cap);

/* ---- the seed's interface, kept for compatibility -------------------------------------- */

/**
 * @brief Seed-compatible check with the Kconfig configuration and the keys embedded by the
 *        application (see secure_ota_set_default_keys()).
 *
 * @param[out] result 1 if an update is available, 0 otherwise
 * @return ESP_OK or an error of secure_ota_check_for_update() (a negative mbedTLS code never)
 */
esp_err_t check_for_update(int *result);

/**
 * @brief Seed-compatible update: check, perform, and restart on success.
 *
 * Unlike the seed it reports failure: it returns only on error (the device restarts on success).
 */
esp_err_t perform_update(void);

/**
 * @brief Keys and CA used by check_for_update()/perform_update() (the application's embedded
 *        files). The structure is copied; the PEM buffers must stay valid.
 */
esp_err_t secure_ota_set_default_keys(const secure_ota_config_t *keys);

#ifdef __cplusplus
}
#endif
