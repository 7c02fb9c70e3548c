/*
** ag_jsonnum.c: ECMAScript Number::toString for finite doubles (ECMA-262
** 7.1.12.1, the number form RFC 8785 section 3.2.2.3 adopts).
**
** Digits: the shortest precision p in 1..17 whose correctly rounded
** "%.*e" output reads back (strtod) as the same double (found by binary
** search).  glibc's printf
** and strtod are exact, so that is the closest p-digit decimal, which is
** what ECMAScript asks for.  One case needs more: when x is a power of two
** the interval of decimals that read back as x is narrower below x than
** above it, so the closest p-digit candidate may lie just below and fail
** while the next one up reads back; we try that one too.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ag_jsonnum.h"

static double readback (const char *digits, int p, int e) {
  char buf[40];
  int n = 0;
  buf[n++] = digits[0];
  buf[n++] = '.';
  memcpy(buf + n, digits + 1, (size_t)(p - 1));
  n += p - 1;
  snprintf(buf + n, sizeof buf - (size_t)n, "e%d", e);
  return strtod(buf, NULL);
}

/* Adds one unit in the last place of digits[0..p-1]; may bump *e. */
static void increment (char digits[17], int p, int *e) {
  int i = p - 1;
  while (i >= 0 && digits[i] == '9') digits[i--] = '0';
  if (i >= 0) digits[i]++;
  else {  /* 99..9 + 1 = 100..0: one more decade */
    digits[0] = '1';
    (*e)++;
  }
}

/*
** The p-digit decimal for x, if one reads back as x: digits[0..p-1] and
** decimal exponent *e (x ~ d.ddd * 10^e).  Returns 0 when none does.
*/
static int digits_at (double x, int p, char digits[17], int *e) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.*e", p - 1, x);
  double y = strtod(buf, NULL);
  const char *s = buf;
  for (int i = 0; *s != 'e'; s++)
    if (*s != '.') digits[i++] = *s;
  *e = atoi(s + 1);
  if (y == x) return 1;
  if (y < x) {  /* the power-of-two case: try the candidate above */
    char up[17];
    int eu = *e;
    memcpy(up, digits, (size_t)p);
    increment(up, p, &eu);
    if (readback(up, p, eu) == x) {
      memcpy(digits, up, (size_t)p);
      *e = eu;
      return 1;
    }
  }
  return 0;
}

/*
** Shortest round-trip digits of x > 0; returns their count k, sets *e.
** Binary search over p: if p digits read back, so do p + 1 (the closest
** p+1-digit decimal is at least as close), and 17 always do.
*/
static int shortest (double x, char digits[17], int *e) {
  int lo = 1, hi = 17, found = 0;
  char d[17];
  int de;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (digits_at(x, mid, d, &de)) {
      hi = mid;
      memcpy(digits, d, (size_t)mid);
      *e = de;
      found = mid;
    }
    else lo = mid + 1;
  }
  if (found != hi) digits_at(x, hi, digits, e);  /* hi == 17, not tried */
  while (hi > 1 && digits[hi - 1] == '0') hi--;
  return hi;
}

size_t ag_jsonnum_format (double x, char out[AG_JSONNUM_MAX]) {
  char d[17];
  char *o = out;
  int k, e, n;
  if (!isfinite(x)) {
    out[0] = '\0';
    return 0;
  }
  if (x == 0) {  /* 0 and -0 */
    memcpy(out, "0", 2);
    return 1;
  }
  if (x < 0) {
    *o++ = '-';
    x = -x;
  }
  k = shortest(x, d, &e);
  n = e + 1;  /* x = 0.d1..dk * 10^n, ECMAScript's n */
  if (k <= n && n <= 21) {  /* integer: digits then n-k zeros */
    memcpy(o, d, (size_t)k);
    o += k;
    memset(o, '0', (size_t)(n - k));
    o += n - k;
  }
  else if (0 < n && n <= 21) {  /* point inside the digits */
    memcpy(o, d, (size_t)n);
    o += n;
    *o++ = '.';
    memcpy(o, d + n, (size_t)(k - n));
    o += k - n;
  }
  else if (-6 < n && n <= 0) {  /* 0.000ddd */
    *o++ = '0';
    *o++ = '.';
    memset(o, '0', (size_t)-n);
    o += -n;
    memcpy(o, d, (size_t)k);
    o += k;
  }
  else {  /* d.ddde+N */
    *o++ = d[0];
    if (k > 1) {
      *o++ = '.';
      memcpy(o, d + 1, (size_t)(k - 1));
      o += k - 1;
    }
    o += snprintf(o, (size_t)(AG_JSONNUM_MAX - (o - out)), "e%c%d",
                  n - 1 >= 0 ? '+' : '-', abs(n - 1));
    return (size_t)(o - out);
  }
  *o = '\0';
  return (size_t)(o - out);
}
