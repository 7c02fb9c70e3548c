/*
** ag_sha256.h: SHA-256 over OpenSSL's EVP interface: one-shot, streaming
** and over a file.  No Lua types.
*/
#ifndef AG_SHA256_H
#define AG_SHA256_H

#include <stddef.h>

#include "ag_err.h"

#define AG_SHA256_LEN 32        /* digest bytes */
#define AG_SHA256_HEXLEN 64     /* lowercase hex digits, without the NUL */

/* A streaming hasher (an EVP_MD_CTX set up for SHA-256).  Opaque. */
typedef struct ag_sha256 ag_sha256;

/*
** Creates a hasher ready for ag_sha256_update.  On failure sets *out to
** NULL and returns AG_ENOMEM.  Caller owns the result; free with
** ag_sha256_close.
*/
int ag_sha256_open(ag_sha256 **out, char err[AG_ERRLEN]);

/* Feeds `n` bytes.  Copies its input.  Returns AG_OK, or AG_EIO when
** OpenSSL refuses. */
int ag_sha256_update(ag_sha256 *h, const void *p, size_t n);

/*
** Writes the digest of everything fed so far to `digest`.  The hasher is
** finished afterwards: only ag_sha256_close may follow.
*/
int ag_sha256_final(ag_sha256 *h, unsigned char digest[AG_SHA256_LEN]);

/* Frees the hasher.  NULL is a harmless no-op.  Returns AG_OK. */
int ag_sha256_close(ag_sha256 *h);

/* Digest of `n` bytes at `p` in one call. */
int ag_sha256_buf(const void *p, size_t n,
                  unsigned char digest[AG_SHA256_LEN]);

/*
** Digest of the file at `path`, read with read(2) in 256 KiB chunks.
** Returns AG_ENOTFOUND when the file does not exist, AG_EIO for other
** open or read errors, with "open '<path>': <strerror>" or
** "read '<path>': <strerror>" in `err`.
*/
int ag_sha256_file(const char *path, unsigned char digest[AG_SHA256_LEN],
                   char err[AG_ERRLEN]);

/* Lowercase hex of a digest into `hex` (NUL-terminated). */
void ag_sha256_hex(const unsigned char digest[AG_SHA256_LEN],
                   char hex[AG_SHA256_HEXLEN + 1]);

#endif
