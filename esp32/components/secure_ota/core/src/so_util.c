/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Reason names, base64url, UTF-8, names, hex, CRC-32: small helpers of the portable core.
 */
#include <string.h>

#include "so_internal.h"

static const char *const REASON_NAMES[SO_REASON_COUNT] = {
    [SO_REASON_MANIFEST_TOO_LARGE] = "manifest_too_large",
    [SO_REASON_MANIFEST_MALFORMED] = "manifest_malformed",
    [SO_REASON_UNSUPPORTED_ALGORITHM] = "unsupported_algorithm",
    [SO_REASON_MANIFEST_DECRYPT_FAILED] = "manifest_decrypt_failed",
    [SO_REASON_UNKNOWN_KEY] = "unknown_key",
    [SO_REASON_BAD_SIGNATURE] = "bad_signature",
    [SO_REASON_INVALID_CLAIMS] = "invalid_claims",
    [SO_REASON_UNSUPPORTED_FORMAT] = "unsupported_format",
    [SO_REASON_WRONG_DEVICE_TYPE] = "wrong_device_type",
    [SO_REASON_WRONG_CHIP] = "wrong_chip",
    [SO_REASON_ALREADY_INSTALLED] = "already_installed",
    [SO_REASON_ROLLBACK] = "rollback",
    [SO_REASON_SECURE_VERSION_TOO_LOW] = "secure_version_too_low",
    [SO_REASON_EXPIRED] = "expired",
    [SO_REASON_IMAGE_TOO_LARGE] = "image_too_large",
    [SO_REASON_FRESHNESS_INVALID] = "freshness_invalid",
    [SO_REASON_STALE_MANIFEST] = "stale_manifest",
    [SO_REASON_IMAGE_SIZE_MISMATCH] = "image_size_mismatch",
    [SO_REASON_ENC_DIGEST_MISMATCH] = "enc_digest_mismatch",
    [SO_REASON_IMAGE_HEADER_INVALID] = "image_header_invalid",
    [SO_REASON_IMAGE_DECRYPT_FAILED] = "image_decrypt_failed",
    [SO_REASON_IMAGE_DIGEST_MISMATCH] = "image_digest_mismatch",
    [SO_REASON_IMAGE_INVALID] = "image_invalid",
    [SO_REASON_SECURE_BOOT_SIGNATURE_INVALID] = "secure_boot_signature_invalid",
    [SO_REASON_CONNECTION_FAILED] = "connection_failed",
    [SO_REASON_TIMEOUT] = "timeout",
    [SO_REASON_UNEXPECTED_STATUS] = "unexpected_status",
    [SO_REASON_BAD_HEADER] = "bad_header",
    [SO_REASON_UNSUPPORTED_ENCODING] = "unsupported_encoding",
    [SO_REASON_REDIRECT_REFUSED] = "redirect_refused",
};

const char *so_reason_name(int reason)
{
    if (reason <= 0 || reason >= SO_REASON_COUNT) {
        return NULL;
    }
    return REASON_NAMES[reason];
}

int so_header_seq(const char *value, uint32_t *out)
{
    if (!value || !out) {
        return SO_REASON_BAD_HEADER;
    }
    uint64_t n = 0;
    size_t i = 0;
    for (; value[i]; i++) {
        if (i >= 10 || value[i] < '0' || value[i] > '9') {
            return SO_REASON_BAD_HEADER;
        }
        n = n * 10u + (uint64_t)(value[i] - '0');
    }
    if (i == 0 || n == 0 || n > SO_MAX_SEQ) {
        return SO_REASON_BAD_HEADER;
    }
    *out = (uint32_t)n;
    return SO_OK;
}

static bool token_is(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != word[i]) {
            return false;
        }
    }
    return true;
}

int so_header_identity(const char *value)
{
    if (!value) {
        return SO_OK;
    }
    const char *p = value;
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        const char *start = p;
        while (*p && *p != ',') {
            p++;
        }
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }
        if (end > start && !token_is(start, (size_t)(end - start), "identity")) {
            return SO_REASON_UNSUPPORTED_ENCODING;
        }
        if (!*p) {
            return SO_OK;
        }
        p++;
    }
}

static bool token68_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int so_bearer_header(const char *token, char *out, size_t cap)
{
    if (out && cap) {
        out[0] = '\0';
    }
    if (!token || !out) {
        return SO_ERR_INVALID_ARG;
    }
    size_t n = 0;
    while (n <= SO_MAX_TOKEN_LENGTH && token[n] && token68_char(token[n])) {
        n++;
    }
    size_t len = n;
    while (len <= SO_MAX_TOKEN_LENGTH && token[len] == '=') {
        len++;
    }
    if (n == 0 || len > SO_MAX_TOKEN_LENGTH || token[len] != '\0') {
        return SO_ERR_INVALID_ARG;
    }
    static const char prefix[] = "Bearer ";
    if (cap < sizeof prefix + len) {
        return SO_ERR_INVALID_ARG;
    }
    memcpy(out, prefix, sizeof prefix - 1);
    memcpy(out + sizeof prefix - 1, token, len);
    out[sizeof prefix - 1 + len] = '\0';
    return SO_OK;
}

int so_redirect_ok(const char *location)
{
    if (!location || !location[0]) {
        return SO_REASON_REDIRECT_REFUSED;
    }
    for (const char *c = location; *c; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '\\') {
            return SO_REASON_REDIRECT_REFUSED;
        }
    }
    if (location[0] == '/') {
        return location[1] == '/' ? SO_REASON_REDIRECT_REFUSED : SO_OK;
    }
    static const char https[] = "https://";
    for (size_t i = 0; i < sizeof https - 1; i++) {
        char c = location[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != https[i]) {
            return SO_REASON_REDIRECT_REFUSED;
        }
    }
    const char *authority = location + sizeof https - 1;
    size_t end = strcspn(authority, "/?#");
    if (end == 0 || memchr(authority, '@', end)) {
        return SO_REASON_REDIRECT_REFUSED;
    }
    return SO_OK;
}

const char *so_secure_boot_name(so_secure_boot_t scheme)
{
    switch (scheme) {
    case SO_SB_V1: return "v1";
    case SO_SB_V2_RSA3072: return "v2-rsa3072";
    case SO_SB_V2_ECDSA256: return "v2-ecdsa256";
    case SO_SB_V2_ECDSA384: return "v2-ecdsa384";
    }
    return "?";
}

/* ---- base64url ------------------------------------------------------------------------ */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

bool so_b64url_alphabet(const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (b64_value((unsigned char)in[i]) < 0) {
            return false;
        }
    }
    return true;
}

size_t so_b64url_decoded_len(size_t len)
{
    return (len / 4) * 3 + ((len % 4) ? (len % 4) - 1 : 0);
}

bool so_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (len % 4 == 1 || !so_b64url_alphabet(in, len)) {
        return false;
    }
    size_t need = so_b64url_decoded_len(len);
    if (need > cap) {
        return false;
    }
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 6) | (uint32_t)b64_value((unsigned char)in[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1u;
        }
    }
    if (acc != 0) {
        return false; /* non-zero unused bits: not the one encoding of these bytes */
    }
    *out_len = n;
    return true;
}

size_t so_b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    static const char ALPHABET[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t need = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
    if (len == 0 || need >= cap) {
        return 0;
    }
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[n++] = ALPHABET[(acc >> bits) & 63u];
        }
        acc &= (1u << bits) - 1u;
    }
    if (bits > 0) {
        out[n++] = ALPHABET[(acc << (6 - bits)) & 63u];
    }
    out[n] = '\0';
    return n;
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */

bool so_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
        } else if (c == 0xE0) {
            extra = 2; lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            extra = 2;
        } else if (c == 0xED) {
            extra = 2; hi = 0x9F;
        } else if (c == 0xF0) {
            extra = 3; lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            extra = 3;
        } else if (c == 0xF4) {
            extra = 3; hi = 0x8F;
        } else {
            return false;
        }
        if (len - i <= extra) {
            return false;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= extra; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) {
                return false;
            }
        }
        i += extra + 1;
    }
    return true;
}

/* ---- names and hex ---------------------------------------------------------------------- */

static bool is_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool so_is_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SO_MAX_NAME_LENGTH || !is_alnum(s[0])) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
            return false;
        }
        if (c == '.' && i + 1 < n && s[i + 1] == '.') {
            return false;
        }
    }
    return true;
}

bool so_is_hex64(const char *s)
{
    for (size_t i = 0; i < 64; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return s[64] == '\0';
}

bool so_hex64_decode(const char *hex, uint8_t out[32])
{
    if (!so_is_hex64(hex)) {
        return false;
    }
    for (size_t i = 0; i < 32; i++) {
        char h = hex[2 * i], l = hex[2 * i + 1];
        int vh = (h <= '9') ? h - '0' : h - 'a' + 10;
        int vl = (l <= '9') ? l - '0' : l - 'a' + 10;
        out[i] = (uint8_t)((vh << 4) | vl);
    }
    return true;
}

void so_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xF];
    }
    out[2 * len] = '\0';
}

void so_sha256_hex(const uint8_t *data, size_t len, char hex[65])
{
    uint8_t digest[32];
    so_sha256(data, len, digest);
    so_hex_encode(digest, 32, hex);
}

bool so_ct_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}

void so_wipe(void *p, size_t len)
{
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (len--) {
        *v++ = 0;
    }
}

uint32_t so_crc32(const uint8_t *data, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return crc ^ 0xFFFFFFFFu;
}
