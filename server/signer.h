/* signer.h: Huawei Cloud SDK-HMAC-SHA256 request signing (API spec §2.2).
 * Pure functions: the server verifies with them, the CLI signs with them. */
#ifndef IMGSEARCH_SIGNER_H
#define IMGSEARCH_SIGNER_H

#include <stddef.h>

#define SIGNER_ALGORITHM "SDK-HMAC-SHA256"

/* Returns a header's value (case-insensitive name), or NULL. */
typedef const char *(*signer_header_fn)(void *ctx, const char *name);

struct signer_query {
    const char *key, *value; /* decoded */
};

/* Lowercase hex SHA-256 of data. */
void sha256_hex(const void *data, size_t len, char out[65]);

/* Percent-encodes with the RFC 3986 unreserved set left alone. */
char *signer_escape(const char *s);

/* Builds the canonical request. `path` is the decoded request path;
 * `signed_headers` is the ';'-joined lowercase list to include. Returns a
 * malloc'd string, or NULL when a listed header is missing. */
char *signer_canonical_request(const char *method, const char *path,
                               const struct signer_query *query, size_t n_query,
                               const char *signed_headers, signer_header_fn get, void *ctx,
                               const char *payload_hash);

/* Signature = hex(HMAC-SHA256(sk, "SDK-HMAC-SHA256\n" date "\n" hex(sha256(creq)))).
 * A date too long to be one (over 174 bytes) gives "" (64 NULs), never a
 * signature that could match. */
void signer_signature(const char *secret_key, const char *sdk_date, const char *canonical_request,
                      char out[65]);

/* Splits "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex" into
 * malloc'd parts. 0 on success. */
int signer_parse_authorization(const char *value, char **access, char **signed_headers,
                               char **signature);

/* "YYYYMMDDTHHMMSSZ" to a UNIX time; -1 when malformed. */
long long signer_parse_date(const char *s);

#endif
