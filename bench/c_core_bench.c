/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Host benchmark of the ESP32 C core against the same mbedTLS primitives alone.
 * Built and run by bench/c_core.py (cc -O2, no sanitizers, Debian's mbedTLS 2.28 and cJSON,
 * linked with the core's sources); uses only the core's public functions (so_core.h).
 *
 *   c_core_bench KEYDIR MANIFEST BINARY REPEATS [EC_KEYDIR EC_MANIFEST]
 *
 * Prints one JSON object: medians in milliseconds of
 *   manifest_open         so_manifest_open of MANIFEST (decrypt + verify + claims)
 *   manifest_floor        RSA-4096 OAEP decrypt of a 32-byte key + AES-256-GCM decrypt of a
 *                         payload the size of the JWS + SHA-256 of it + RSA-3072 PSS verify
 *   sha256_4mib_core      so_sha256_hex over 4 MiB
 *   sha256_4mib_mbedtls   mbedtls_sha256_ret over the same 4 MiB
 *   image_check           so_image_check over BINARY (16 KiB chunks: decrypt, both digests,
 *                         app image structure, secure boot V1 signature)
 *   image_floor           RSA-3072 PKCS#1 v1.5 decrypt + AES-256-GCM decrypt of the image +
 *                         SHA-256 of the file and of the plaintext + ECDSA P-256 verify
 *   manifest_open_ec      (with EC_KEYDIR) so_manifest_open of EC_MANIFEST, made for a key set
 *                         whose manifest key is P-256 (ECDH-ES+A256KW), timed in the same
 *                         repeats as manifest_open
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mbedtls/ctr_drbg.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/entropy.h"
#include "mbedtls/gcm.h"
#include "mbedtls/pk.h"
#include "mbedtls/rsa.h"
#include "mbedtls/sha256.h"
#include "so_core.h"

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;

static int rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    return mbedtls_ctr_drbg_random(&drbg, out, len);
}

static uint8_t *read_file(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", dir, name[0] ? "/" : "", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc((size_t)size + 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    data[size] = 0;
    fclose(f);
    *len = (size_t)size;
    return data;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void check(int ret, const char *what)
{
    if (ret != 0) {
        fprintf(stderr, "%s failed: %d\n", what, ret);
        exit(1);
    }
}

static mbedtls_pk_context load_pk(const char *dir, const char *name, int private_key)
{
    size_t len;
    uint8_t *pem = read_file(dir, name, &len);
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    if (private_key) {
        check(mbedtls_pk_parse_key(&pk, pem, len + 1, NULL, 0), name);
    } else {
        check(mbedtls_pk_parse_public_key(&pk, pem, len + 1), name);
    }
    free(pem);
    return pk;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 7) {
        fprintf(stderr, "usage: %s KEYDIR MANIFEST BINARY REPEATS [EC_KEYDIR EC_MANIFEST]\n",
                argv[0]);
        return 2;
    }
    const char *keys = argv[1];
    int repeats = atoi(argv[4]);
    if (repeats < 1 || repeats > 10000) {
        return 2;
    }
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    check(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0), "drbg");

    /* the device's key ring, as the component builds it */
    so_keyring_t *ring;
    check(so_keyring_new(rng, NULL, &ring), "keyring");
    size_t len;
    uint8_t *pem;
    pem = read_file(keys, "manifest_encryption_key.pem", &len);
    check(so_keyring_set_manifest_key(ring, pem, len), "manifest key");
    free(pem);
    pem = read_file(keys, "pre_encryption_key.pem", &len);
    check(so_keyring_set_image_key(ring, pem, len), "image key");
    free(pem);
    pem = read_file(keys, "manifest_signing_pub.pem", &len);
    check(so_keyring_add_signing_key(ring, pem, len), "signing key");
    free(pem);
    pem = read_file(keys, "secure_boot_signing_pub.pem", &len);
    check(so_keyring_set_secure_boot_key(ring, pem, len), "secure boot key");
    free(pem);

    /* a second ring whose manifest key is P-256, for the EC manifest */
    so_keyring_t *ec_ring = NULL;
    size_t ec_manifest_len = 0;
    uint8_t *ec_manifest = NULL;
    if (argc == 7) {
        check(so_keyring_new(rng, NULL, &ec_ring), "keyring");
        pem = read_file(argv[5], "manifest_encryption_key.pem", &len);
        check(so_keyring_set_manifest_key(ec_ring, pem, len), "EC manifest key");
        free(pem);
        pem = read_file(argv[5], "manifest_signing_pub.pem", &len);
        check(so_keyring_add_signing_key(ec_ring, pem, len), "signing key");
        free(pem);
        ec_manifest = read_file(argv[6], "", &ec_manifest_len);
    }

    size_t manifest_len, binary_len;
    uint8_t *manifest = read_file(argv[2], "", &manifest_len);
    uint8_t *binary = read_file(argv[3], "", &binary_len);
    so_claims_t claims;
    /* the claims the image check is judged against */
    check(so_manifest_open(ring, manifest, manifest_len, &claims, NULL, NULL), "manifest_open");

    /* the manifest's primitives alone, on inputs of the same sizes */
    mbedtls_pk_context enc_key = load_pk(keys, "manifest_encryption_key.pem", 1);
    mbedtls_pk_context sign_key = load_pk(keys, "manifest_signing_key.pem", 1);
    mbedtls_pk_context sign_pub = load_pk(keys, "manifest_signing_pub.pem", 0);
    mbedtls_rsa_context *enc_rsa = mbedtls_pk_rsa(enc_key);
    mbedtls_rsa_context *sign_rsa = mbedtls_pk_rsa(sign_key);
    mbedtls_rsa_context *verify_rsa = mbedtls_pk_rsa(sign_pub);
    mbedtls_rsa_set_padding(enc_rsa, MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256);
    mbedtls_rsa_set_padding(sign_rsa, MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256);
    mbedtls_rsa_set_padding(verify_rsa, MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256);
    uint8_t cek[32], wrapped[512], unwrapped[512], iv[12], tag[16], digest[32], sig[512];
    rng(NULL, cek, sizeof cek);
    rng(NULL, iv, sizeof iv);
    check(mbedtls_rsa_rsaes_oaep_encrypt(enc_rsa, rng, NULL, MBEDTLS_RSA_PUBLIC, NULL, 0,
                                         sizeof cek, cek, wrapped), "oaep encrypt");
    size_t jws_len = manifest_len * 3 / 4; /* the JWS inside is about this long */
    uint8_t *plain = malloc(jws_len), *cipher = malloc(jws_len), *out = malloc(jws_len);
    rng(NULL, plain, jws_len);
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    check(mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, cek, 256), "gcm key");
    check(mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, jws_len, iv, sizeof iv,
                                    (const uint8_t *)"hdr", 3, plain, cipher, sizeof tag, tag),
          "gcm encrypt");
    mbedtls_gcm_free(&gcm);
    check(mbedtls_sha256_ret(plain, jws_len, digest, 0), "sha");
    check(mbedtls_rsa_rsassa_pss_sign(sign_rsa, rng, NULL, MBEDTLS_RSA_PRIVATE, MBEDTLS_MD_SHA256,
                                      32, digest, sig), "pss sign");
    /* 4 MiB to hash */
    size_t big = 4u * 1024u * 1024u;
    uint8_t *data = malloc(big);
    rng(NULL, data, 1024);
    for (size_t i = 1024; i < big; i += 1024) {
        memcpy(data + i, data, 1024);
    }
    char hex[65];
    uint8_t *plain_out = malloc(16384);
    int image_repeats = repeats < 7 ? repeats : 7;
    /* the image check's primitives alone: key unwrap, GCM over the image, two digests, ECDSA
     * verify */
    mbedtls_pk_context pre_key = load_pk(keys, "pre_encryption_key.pem", 1);
    mbedtls_pk_context sb_key = load_pk(keys, "secure_boot_signing_key.pem", 1);
    mbedtls_rsa_context *pre_rsa = mbedtls_pk_rsa(pre_key);
    mbedtls_rsa_set_padding(pre_rsa, MBEDTLS_RSA_PKCS_V15, MBEDTLS_MD_NONE);
    uint8_t pre_wrapped[384];
    check(mbedtls_rsa_pkcs1_encrypt(pre_rsa, rng, NULL, MBEDTLS_RSA_PUBLIC, 32, cek, pre_wrapped),
          "pkcs1 encrypt");
    size_t image_len = binary_len - 512;
    uint8_t *img_cipher = malloc(image_len), *img_plain = malloc(image_len);
    uint8_t iv16[16], img_tag[16];
    rng(NULL, iv16, sizeof iv16);
    rng(NULL, img_plain, image_len < 4096 ? image_len : 4096);
    mbedtls_gcm_init(&gcm);
    check(mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, cek, 256), "gcm key");
    check(mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, image_len, iv16, sizeof iv16, NULL,
                                    0, img_plain, img_cipher, sizeof img_tag, img_tag),
          "gcm encrypt");
    mbedtls_gcm_free(&gcm);
    mbedtls_ecdsa_context ecdsa;
    mbedtls_ecdsa_init(&ecdsa);
    check(mbedtls_ecdsa_from_keypair(&ecdsa, mbedtls_pk_ec(sb_key)), "ecdsa key");
    uint8_t ecsig[MBEDTLS_ECDSA_MAX_LEN], signed_digest[32];
    size_t ecsig_len;
    check(mbedtls_sha256_ret(img_plain, image_len, signed_digest, 0), "sha plain");
    check(mbedtls_ecdsa_write_signature(&ecdsa, MBEDTLS_MD_SHA256, signed_digest, 32, ecsig,
                                        &ecsig_len, rng, NULL), "ecdsa sign");

    /* every repeat times each measurement once, core and primitives alternating, so that a
     * change in the machine's load affects both sides of each ratio alike */
    enum {
        MANIFEST_OPEN,
        MANIFEST_FLOOR,
        SHA_CORE,
        SHA_MBEDTLS,
        IMAGE_CHECK,
        IMAGE_FLOOR,
        MANIFEST_OPEN_EC,
        N_T
    };
    double *t[N_T];
    for (int k = 0; k < N_T; k++) {
        t[k] = calloc((size_t)repeats, sizeof *t[k]);
    }
    for (int i = 0; i < repeats; i++) {
        double s = now_ms();
        check(so_manifest_open(ring, manifest, manifest_len, &claims, NULL, NULL), "manifest_open");
        t[MANIFEST_OPEN][i] = now_ms() - s;

        if (ec_ring) {
            s = now_ms();
            so_claims_t ec_claims;
            check(so_manifest_open(ec_ring, ec_manifest, ec_manifest_len, &ec_claims, NULL, NULL),
                  "manifest_open (EC)");
            t[MANIFEST_OPEN_EC][i] = now_ms() - s;
        }

        s = now_ms();
        size_t olen;
        check(mbedtls_rsa_rsaes_oaep_decrypt(enc_rsa, rng, NULL, MBEDTLS_RSA_PRIVATE, NULL, 0,
                                             &olen, wrapped, unwrapped, sizeof unwrapped),
              "oaep decrypt");
        mbedtls_gcm_init(&gcm);
        check(mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, unwrapped, 256), "gcm key");
        check(mbedtls_gcm_auth_decrypt(&gcm, jws_len, iv, sizeof iv, (const uint8_t *)"hdr", 3,
                                       tag, sizeof tag, cipher, out), "gcm decrypt");
        mbedtls_gcm_free(&gcm);
        check(mbedtls_sha256_ret(out, jws_len, digest, 0), "sha");
        check(mbedtls_rsa_rsassa_pss_verify(verify_rsa, NULL, NULL, MBEDTLS_RSA_PUBLIC,
                                            MBEDTLS_MD_SHA256, 32, digest, sig), "pss verify");
        t[MANIFEST_FLOOR][i] = now_ms() - s;

        s = now_ms();
        so_sha256_hex(data, big, hex);
        t[SHA_CORE][i] = now_ms() - s;

        s = now_ms();
        check(mbedtls_sha256_ret(data, big, digest, 0), "sha");
        t[SHA_MBEDTLS][i] = now_ms() - s;

        if (i >= image_repeats) {
            continue;
        }
        s = now_ms();
        so_image_check_t *chk;
        check(so_image_check_new(ring, &claims, false, &chk), "image check new");
        for (size_t off = 0; off < binary_len; off += 16384) {
            size_t n = binary_len - off < 16384 ? binary_len - off : 16384, produced;
            check(so_image_check_update(chk, binary + off, n, plain_out, 16384, &produced),
                  "image check update");
        }
        check(so_image_check_finish(chk, true), "image check finish");
        so_image_check_free(chk);
        t[IMAGE_CHECK][i] = now_ms() - s;

        s = now_ms();
        uint8_t key_out[384];
        check(mbedtls_rsa_pkcs1_decrypt(pre_rsa, rng, NULL, MBEDTLS_RSA_PRIVATE, &olen,
                                        pre_wrapped, key_out, sizeof key_out), "pkcs1 decrypt");
        check(mbedtls_sha256_ret(binary, binary_len, digest, 0), "sha file");
        mbedtls_gcm_init(&gcm);
        check(mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key_out, 256), "gcm key");
        check(mbedtls_gcm_auth_decrypt(&gcm, image_len, iv16, sizeof iv16, NULL, 0, img_tag,
                                       sizeof img_tag, img_cipher, img_plain), "gcm decrypt");
        mbedtls_gcm_free(&gcm);
        uint8_t d2[32];
        check(mbedtls_sha256_ret(img_plain, image_len, d2, 0), "sha plain");
        check(mbedtls_ecdsa_read_signature(&ecdsa, d2, 32, ecsig, ecsig_len), "ecdsa verify");
        t[IMAGE_FLOOR][i] = now_ms() - s;
    }
    double manifest_open = median(t[MANIFEST_OPEN], repeats);
    double manifest_floor = median(t[MANIFEST_FLOOR], repeats);
    double sha_core = median(t[SHA_CORE], repeats);
    double sha_mbedtls = median(t[SHA_MBEDTLS], repeats);
    double image_check = median(t[IMAGE_CHECK], image_repeats);
    double image_floor = median(t[IMAGE_FLOOR], image_repeats);

    printf("{\"repeats\": %d, \"manifest_bytes\": %zu, \"binary_bytes\": %zu, "
           "\"manifest_open_ms\": %.4f, \"manifest_floor_ms\": %.4f, "
           "\"sha256_4mib_core_ms\": %.4f, \"sha256_4mib_mbedtls_ms\": %.4f, "
           "\"image_check_ms\": %.4f, \"image_floor_ms\": %.4f, "
           "\"manifest_open_ec_ms\": %.4f, \"ec_manifest_bytes\": %zu}\n",
           repeats, manifest_len, binary_len, manifest_open, manifest_floor, sha_core,
           sha_mbedtls, image_check, image_floor,
           ec_ring ? median(t[MANIFEST_OPEN_EC], repeats) : -1.0, ec_manifest_len);
    so_keyring_free(ring);
    so_keyring_free(ec_ring);
    free(ec_manifest);
    return 0;
}
