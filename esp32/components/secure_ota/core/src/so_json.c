/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Strict JSON (docs/formats.md §4.1) on top of cJSON.
 *
 * cJSON is lenient: it does not validate UTF-8, accepts duplicate member names, accepts
 * numbers such as "01" or "1." (it hands them to strtod), and truncates number literals longer
 * than 63 characters. So a strict scanner runs first: RFC 8259 grammar exactly as Python's
 * json module reads it, strict UTF-8, depth <= 32, no lone surrogate escapes, no "\u0000".
 * While scanning it copies the text for cJSON, replacing a number literal longer than 63
 * characters by an equivalent short one. After cJSON has built the tree, member names are
 * checked for duplicates at every depth (on decoded names, as Python compares them).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "so_internal.h"

#define CJSON_NUMBER_MAX 63 /* cJSON copies at most this many characters of a number */

typedef struct {
    const uint8_t *s;
    size_t len;
    size_t pos;
    int depth;
    uint8_t *out;
    size_t out_len;
    size_t copied;
    bool no_mem;
} scanner_t;

static void skip_ws(scanner_t *sc)
{
    while (sc->pos < sc->len) {
        uint8_t c = sc->s[sc->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        sc->pos++;
    }
}

static int hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_u16(scanner_t *sc, size_t at, uint32_t *value)
{
    if (sc->len - at < 4) {
        return false;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        int d = hex_digit(sc->s[at + i]);
        if (d < 0) {
            return false;
        }
        v = (v << 4) | (uint32_t)d;
    }
    *value = v;
    return true;
}

/* Scan a string at sc->pos (the opening quote). */
static bool scan_string(scanner_t *sc)
{
    sc->pos++; /* opening quote */
    while (sc->pos < sc->len) {
        uint8_t c = sc->s[sc->pos];
        if (c == '"') {
            sc->pos++;
            return true;
        }
        if (c < 0x20) {
            return false;
        }
        if (c != '\\') {
            sc->pos++;
            continue;
        }
        if (sc->len - sc->pos < 2) {
            return false;
        }
        uint8_t e = sc->s[sc->pos + 1];
        uint32_t cp;
        switch (e) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            break;
        case 'u':
            if (!read_u16(sc, sc->pos + 2, &cp)) {
                return false;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return false; /* lone low surrogate */
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t low;
                if (sc->len - sc->pos < 12 || sc->s[sc->pos + 6] != '\\' ||
                    sc->s[sc->pos + 7] != 'u' || !read_u16(sc, sc->pos + 8, &low) ||
                    low < 0xDC00 || low > 0xDFFF) {
                    return false; /* lone high surrogate */
                }
                sc->pos += 6;
            }
            sc->pos += 4;
            break;
        default:
            return false;
        }
        sc->pos += 2;
    }
    return false;
}

static bool digits(scanner_t *sc)
{
    size_t start = sc->pos;
    while (sc->pos < sc->len && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9') {
        sc->pos++;
    }
    return sc->pos > start;
}

static bool scan_number(scanner_t *sc)
{
    size_t start = sc->pos;
    if (sc->s[sc->pos] == '-') {
        sc->pos++;
    }
    if (sc->pos >= sc->len) {
        return false;
    }
    if (sc->s[sc->pos] == '0') {
        sc->pos++;
    } else if (!digits(sc)) {
        return false;
    }
    if (sc->pos < sc->len && sc->s[sc->pos] == '.') {
        sc->pos++;
        if (!digits(sc)) {
            return false;
        }
    }
    if (sc->pos < sc->len && (sc->s[sc->pos] == 'e' || sc->s[sc->pos] == 'E')) {
        sc->pos++;
        if (sc->pos < sc->len && (sc->s[sc->pos] == '+' || sc->s[sc->pos] == '-')) {
            sc->pos++;
        }
        if (!digits(sc)) {
            return false;
        }
    }
    size_t n = sc->pos - start;
    if (n > CJSON_NUMBER_MAX) {
        /* give cJSON an equivalent literal it can read whole */
        char *copy = malloc(n + 1);
        if (!copy) {
            sc->no_mem = true;
            return false;
        }
        memcpy(copy, sc->s + start, n);
        copy[n] = '\0';
        double v = strtod(copy, NULL);
        free(copy);
        char repl[40];
        int k;
        if (isinf(v)) {
            k = snprintf(repl, sizeof repl, "%s", v < 0 ? "-1e999" : "1e999");
        } else {
            k = snprintf(repl, sizeof repl, "%.17g", v);
        }
        memcpy(sc->out + sc->out_len, sc->s + sc->copied, start - sc->copied);
        sc->out_len += start - sc->copied;
        memcpy(sc->out + sc->out_len, repl, (size_t)k);
        sc->out_len += (size_t)k;
        sc->copied = sc->pos;
    }
    return true;
}

static bool literal(scanner_t *sc, const char *word)
{
    size_t n = strlen(word);
    if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0) {
        return false;
    }
    sc->pos += n;
    return true;
}

static bool scan_value(scanner_t *sc);

static bool scan_object(scanner_t *sc)
{
    if (++sc->depth > SO_MAX_JSON_DEPTH) {
        return false;
    }
    sc->pos++;
    skip_ws(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == '}') {
        sc->pos++;
        sc->depth--;
        return true;
    }
    for (;;) {
        if (sc->pos >= sc->len || sc->s[sc->pos] != '"') {
            return false;
        }
        if (!scan_string(sc)) {
            return false;
        }
        skip_ws(sc);
        if (sc->pos >= sc->len || sc->s[sc->pos] != ':') {
            return false;
        }
        sc->pos++;
        skip_ws(sc);
        if (!scan_value(sc)) {
            return false;
        }
        skip_ws(sc);
        if (sc->pos >= sc->len) {
            return false;
        }
        if (sc->s[sc->pos] == ',') {
            sc->pos++;
            skip_ws(sc);
            continue;
        }
        if (sc->s[sc->pos] == '}') {
            sc->pos++;
            sc->depth--;
            return true;
        }
        return false;
    }
}

static bool scan_array(scanner_t *sc)
{
    if (++sc->depth > SO_MAX_JSON_DEPTH) {
        return false;
    }
    sc->pos++;
    skip_ws(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == ']') {
        sc->pos++;
        sc->depth--;
        return true;
    }
    for (;;) {
        if (!scan_value(sc)) {
            return false;
        }
        skip_ws(sc);
        if (sc->pos >= sc->len) {
            return false;
        }
        if (sc->s[sc->pos] == ',') {
            sc->pos++;
            skip_ws(sc);
            continue;
        }
        if (sc->s[sc->pos] == ']') {
            sc->pos++;
            sc->depth--;
            return true;
        }
        return false;
    }
}

static bool scan_value(scanner_t *sc)
{
    if (sc->pos >= sc->len) {
        return false;
    }
    uint8_t c = sc->s[sc->pos];
    switch (c) {
    case '{': return scan_object(sc);
    case '[': return scan_array(sc);
    case '"': return scan_string(sc);
    case 't': return literal(sc, "true");
    case 'f': return literal(sc, "false");
    case 'n': return literal(sc, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            return scan_number(sc);
        }
        return false;
    }
}

static bool has_nul_escape(const uint8_t *raw, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++) {
        if (raw[i] == '\\' && (raw[i + 1] == 'u' || raw[i + 1] == 'U') && raw[i + 2] == '0' &&
            raw[i + 3] == '0' && raw[i + 4] == '0' && raw[i + 5] == '0') {
            return true;
        }
    }
    return false;
}

static bool has_duplicates(const cJSON *node)
{
    for (const cJSON *child = node ? node->child : NULL; child; child = child->next) {
        if (cJSON_IsObject(node)) {
            for (const cJSON *other = child->next; other; other = other->next) {
                if (child->string && other->string && strcmp(child->string, other->string) == 0) {
                    return true;
                }
            }
        }
        if ((cJSON_IsObject(child) || cJSON_IsArray(child)) && has_duplicates(child)) {
            return true;
        }
    }
    return false;
}

bool so_json_get_int(const cJSON *object, const char *name, double low, double high,
                     uint64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    if (!cJSON_IsNumber(item)) {
        return false;
    }
    double v = item->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < low || v > high) {
        return false;
    }
    *out = (uint64_t)(v < 0 ? 0 : v); /* -0.0 is 0 */
    return true;
}

cJSON *so_json_parse(const uint8_t *raw, size_t len, bool *no_mem)
{
    if (no_mem) {
        *no_mem = false;
    }
    if (!raw || has_nul_escape(raw, len) || !so_utf8_valid(raw, len)) {
        return NULL;
    }
    uint8_t *out = malloc(len + 1);
    if (!out) {
        if (no_mem) *no_mem = true;
        return NULL;
    }
    scanner_t sc = {.s = raw, .len = len, .out = out};
    skip_ws(&sc);
    bool ok = sc.pos < len && raw[sc.pos] == '{' && scan_object(&sc);
    if (ok) {
        skip_ws(&sc);
        ok = (sc.pos == len);
    }
    cJSON *root = NULL;
    if (!ok && sc.no_mem && no_mem) {
        *no_mem = true;
    }
    if (ok) {
        memcpy(out + sc.out_len, raw + sc.copied, len - sc.copied);
        sc.out_len += len - sc.copied;
        out[sc.out_len] = '\0';
        root = cJSON_ParseWithLength((const char *)out, sc.out_len);
        if (root && (!cJSON_IsObject(root) || has_duplicates(root))) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    free(out);
    return root;
}
