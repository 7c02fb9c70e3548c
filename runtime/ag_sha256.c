/*
** ag_sha256.c: SHA-256 through OpenSSL EVP (libcrypto picks the fastest
** implementation the CPU offers, SHA-NI included).
*/
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ag_sha256.h"

/* The handle is the EVP context itself: nothing else to keep. */
struct ag_sha256 { EVP_MD_CTX *ctx; };

#define FILE_CHUNK (256 * 1024)

int ag_sha256_open (ag_sha256 **out, char err[AG_ERRLEN]) {
  ag_sha256 *h = malloc(sizeof *h);
  *out = NULL;
  if (h == NULL)
    return ag_seterr(err, AG_ENOMEM, "%s", ag_strerror(AG_ENOMEM));
  h->ctx = EVP_MD_CTX_new();
  if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
    ag_sha256_close(h);
    return ag_seterr(err, AG_ENOMEM, "cannot set up a SHA-256 context");
  }
  *out = h;
  return AG_OK;
}

int ag_sha256_update (ag_sha256 *h, const void *p, size_t n) {
  return EVP_DigestUpdate(h->ctx, p, n) == 1 ? AG_OK : AG_EIO;
}

int ag_sha256_final (ag_sha256 *h, unsigned char digest[AG_SHA256_LEN]) {
  unsigned int len = 0;
  return EVP_DigestFinal_ex(h->ctx, digest, &len) == 1 &&
         len == AG_SHA256_LEN ? AG_OK : AG_EIO;
}

int ag_sha256_close (ag_sha256 *h) {
  if (h != NULL) {
    EVP_MD_CTX_free(h->ctx);  /* NULL-safe */
    free(h);
  }
  return AG_OK;
}

int ag_sha256_buf (const void *p, size_t n,
                   unsigned char digest[AG_SHA256_LEN]) {
  unsigned int len = 0;
  return EVP_Digest(p, n, digest, &len, EVP_sha256(), NULL) == 1 &&
         len == AG_SHA256_LEN ? AG_OK : AG_EIO;
}

int ag_sha256_file (const char *path, unsigned char digest[AG_SHA256_LEN],
                    char err[AG_ERRLEN]) {
  int rc = AG_OK;
  unsigned char *buf = NULL;
  ag_sha256 *h = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    rc = ag_seterr(err, errno == ENOENT ? AG_ENOTFOUND : AG_EIO,
                   "open '%s': %s", path, strerror(errno));
    goto done;
  }
  buf = malloc(FILE_CHUNK);
  if (buf == NULL) {
    rc = ag_seterr(err, AG_ENOMEM, "read '%s': %s", path,
                   ag_strerror(AG_ENOMEM));
    goto done;
  }
  char why[AG_ERRLEN];
  if ((rc = ag_sha256_open(&h, why)) != AG_OK) {
    ag_seterr(err, rc, "read '%s': %s", path, why);
    goto done;
  }
  for (;;) {
    ssize_t n = read(fd, buf, FILE_CHUNK);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = ag_seterr(err, AG_EIO, "read '%s': %s", path, strerror(errno));
      goto done;
    }
    if ((rc = ag_sha256_update(h, buf, (size_t)n)) != AG_OK) {
      ag_seterr(err, rc, "read '%s': digest update failed", path);
      goto done;
    }
  }
  if ((rc = ag_sha256_final(h, digest)) != AG_OK)
    ag_seterr(err, rc, "read '%s': digest failed", path);
done:
  ag_sha256_close(h);
  free(buf);
  if (fd >= 0) close(fd);
  return rc;
}

void ag_sha256_hex (const unsigned char digest[AG_SHA256_LEN],
                    char hex[AG_SHA256_HEXLEN + 1]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < AG_SHA256_LEN; i++) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 0xf];
  }
  hex[AG_SHA256_HEXLEN] = '\0';
}
