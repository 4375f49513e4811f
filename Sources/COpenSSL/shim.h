// OpenSSL 3 for Swift. Most of OpenSSL imports as is; its function-like macros
// (SSL_CTX_set_min_proto_version, BIO_set_mem_eof_return, sk_GENERAL_NAME_*, ...)
// do not, so each one we use is wrapped here in a static inline function.
#ifndef CHUKAN_COPENSSL_SHIM_H
#define CHUKAN_COPENSSL_SHIM_H

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

static inline int chukan_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

static inline int chukan_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

static inline long chukan_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}

static inline long chukan_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

static inline long chukan_BIO_set_mem_eof_return(BIO *bio, int value) {
    return BIO_set_mem_eof_return(bio, value);
}

static inline size_t chukan_BIO_pending(BIO *bio) {
    return (size_t)BIO_ctrl_pending(bio);
}

static inline int chukan_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// The protocol list we answer ALPN with: "ttrpc" when the client offers it.
/// A client that offers no ALPN (containerd's does not) is served all the same.
static inline int chukan_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                     const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl; (void)arg;
    static const unsigned char supported[] = "\x05ttrpc";
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, outlen, supported, sizeof(supported) - 1, in, inlen)
        == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static inline void chukan_SSL_CTX_enable_alpn_ttrpc(SSL_CTX *ctx) {
    SSL_CTX_set_alpn_select_cb(ctx, chukan_alpn_select, NULL);
}

/// Writes the subject's common name, as UTF-8, into buf (NUL-terminated); returns its
/// length, or -1 when there is none, more than one (which one the policy meant would be
/// a guess), one that holds a NUL ("platform-operator\0x" must not read as
/// "platform-operator"), or one that does not fit. The raw bytes are not used: a
/// BMPString would come out empty.
static inline int chukan_X509_subject_cn(X509 *cert, char *buf, int buflen) {
    X509_NAME *name = X509_get_subject_name(cert);
    if (name == NULL || buflen <= 0) return -1;
    int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (at < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, at) >= 0) return -1;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at)));
    if (n < 0) return -1;
    int ok = n < buflen && memchr(utf8, 0, (size_t)n) == NULL;
    if (ok) {
        memcpy(buf, utf8, (size_t)n);
        buf[n] = 0;
    }
    OPENSSL_free(utf8);
    return ok ? n : -1;
}

/// Writes the subject in RFC 2253 form into buf; returns its length or -1.
static inline int chukan_X509_subject_line(X509 *cert, char *buf, int buflen) {
    X509_NAME *name = X509_get_subject_name(cert);
    if (name == NULL || buflen <= 0) return -1;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) return -1;
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    int n = BIO_read(bio, buf, buflen - 1);
    BIO_free(bio);
    if (n < 0) n = 0;
    buf[n] = 0;
    return n;
}

/// Subject alternative names, rendered as "DNS:name", "IP:addr", "URI:uri" or
/// "email:addr", separated by '\n'. Returns the length written, or -1.
static inline int chukan_X509_subject_alt_names(X509 *cert, char *buf, int buflen) {
    if (buflen <= 0) return -1;
    buf[0] = 0;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL) return 0;
    int used = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        char item[256];
        item[0] = 0;
        if (gn->type == GEN_DNS || gn->type == GEN_URI || gn->type == GEN_EMAIL) {
            const char *prefix = gn->type == GEN_DNS ? "DNS:" : gn->type == GEN_URI ? "URI:" : "email:";
            const ASN1_IA5STRING *s = gn->d.ia5;
            int len = ASN1_STRING_length(s);
            if (len > 200) len = 200;
            snprintf(item, sizeof item, "%s%.*s", prefix, len, (const char *)ASN1_STRING_get0_data(s));
        } else if (gn->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *ip = gn->d.iPAddress;
            const unsigned char *p = ASN1_STRING_get0_data(ip);
            int len = ASN1_STRING_length(ip);
            if (len == 4) {
                snprintf(item, sizeof item, "IP:%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
            } else if (len == 16) {
                int off = snprintf(item, sizeof item, "IP:");
                for (int k = 0; k < 16; k += 2)
                    off += snprintf(item + off, sizeof item - off, k ? ":%x" : "%x", (p[k] << 8) | p[k + 1]);
            }
        }
        int n = (int)strlen(item);
        if (n == 0) continue;
        if (used + n + 2 > buflen) break;
        if (used > 0) buf[used++] = '\n';
        memcpy(buf + used, item, (size_t)n);
        used += n;
        buf[used] = 0;
    }
    GENERAL_NAMES_free(names);
    return used;
}


/// Options every Chukan context sets: no compression (CRIME), no renegotiation,
/// the server's cipher order, no session tickets (mutual TLS, short-lived keys).
static inline uint64_t chukan_tls_default_options(void) {
    return SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET;
}

/// The bytes a memory BIO holds (BIO_get_mem_data is a macro).
static inline long chukan_BIO_get_mem_data(BIO *bio, char **data) { return BIO_get_mem_data(bio, data); }

/// An HMAC-SHA256 context with its digest set and no key: per use it is duplicated, so the
/// provider's algorithms are looked up once, not on every call (OpenSSL 3 fetches are
/// costly). OpenSSL 3.0 cannot duplicate an HKDF context, hence HKDF over HMAC below.
static inline EVP_MAC_CTX *chukan_hmac_sha256_template(void) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    if (ctx == NULL) return NULL;
    OSSL_PARAM params[2] = { OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0), OSSL_PARAM_construct_end() };
    if (EVP_MAC_CTX_set_params(ctx, params) != 1) { EVP_MAC_CTX_free(ctx); return NULL; }
    return ctx;
}

/// HMAC-SHA256(key, a || b || c) into out[32].
static inline int chukan_hmac_sha256(const EVP_MAC_CTX *template_ctx, const unsigned char *key, size_t key_len,
                                     const unsigned char *a, size_t a_len, const unsigned char *b, size_t b_len,
                                     const unsigned char *c, size_t c_len, unsigned char *out) {
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(template_ctx);
    if (ctx == NULL) return 0;
    size_t n = 0;
    int ok = EVP_MAC_init(ctx, key, key_len, NULL) == 1
        && (a_len == 0 || EVP_MAC_update(ctx, a, a_len) == 1)
        && (b_len == 0 || EVP_MAC_update(ctx, b, b_len) == 1)
        && (c_len == 0 || EVP_MAC_update(ctx, c, c_len) == 1)
        && EVP_MAC_final(ctx, out, &n, 32) == 1 && n == 32;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

/// HKDF-SHA256 (RFC 5869): extract, then expand to out_len bytes (at most 255 × 32).
static inline int chukan_hkdf_sha256(const EVP_MAC_CTX *hmac, const unsigned char *ikm, size_t ikm_len,
                                     const unsigned char *salt, size_t salt_len, const unsigned char *info, size_t info_len,
                                     unsigned char *out, size_t out_len) {
    static const unsigned char zeros[32] = {0};
    unsigned char prk[32], block[32];
    if (out_len > 255 * 32) return 0;
    if (salt_len == 0) { salt = zeros; salt_len = sizeof zeros; }
    if (!chukan_hmac_sha256(hmac, salt, salt_len, ikm, ikm_len, NULL, 0, NULL, 0, prk)) return 0;
    size_t done = 0, previous = 0;
    unsigned char counter = 1;
    int ok = 1;
    while (done < out_len) {
        if (!chukan_hmac_sha256(hmac, prk, sizeof prk, block, previous, info, info_len, &counter, 1, block)) { ok = 0; break; }
        previous = sizeof block;
        size_t n = out_len - done < sizeof block ? out_len - done : sizeof block;
        memcpy(out + done, block, n);
        done += n;
        counter++;
    }
    OPENSSL_cleanse(prk, sizeof prk);
    OPENSSL_cleanse(block, sizeof block);
    return ok;
}

static inline int chukan_ERR_GET_REASON(unsigned long e) { return ERR_GET_REASON(e); }

#endif
