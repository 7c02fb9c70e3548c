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
#include <stdint.h>
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
static int shortest (double x, char digits[17], int *e, int minp) {
  int lo = minp, hi = 17, found = 0;
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

/*
** Fast path, exact or declined.  For k = 0, 1, 2, ... fractional digits,
** the integers m with m / 10^k reading back as x are a run around
** P = x * 10^k, so if there is one, floor(P) or ceil(P) is one; those are
** among c - 1, c, c + 1 with c = nearbyint(fl(P)) (the product is off by
** at most 1/16 below 2^50).  Each is tested exactly: m < 2^50 and 10^k
** (k <= 22) are exact doubles and IEEE division rounds correctly, so
** m / 10^k == x is what strtod would say.  The first k with a candidate
** gives the fewest digits, and the candidate nearest P (fma gives the
** sign and size of m - P exactly enough: a tie declines) the closest.
** Declined (returns 0, the slow path decides): subnormals; powers of two
** (their interval is lopsided); x >= 2^50 unless integral; more than 22
** fractional digits; and results so near a power of ten that a candidate
** of the next decade down or up could have as few digits.
*/
static const double pow10tab[23] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
  1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

static int digits_of (uint64_t m, char digits[17]) {
  char b[20];
  int n = 0;
  do { b[n++] = (char)('0' + m % 10); m /= 10; } while (m > 0);
  for (int i = 0; i < n; i++) digits[i] = b[n - 1 - i];
  return n;
}

static int shortest_fast (double x, char digits[17], int *e, int *minp) {
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  if ((bits >> 52) == 0 || (bits & 0xfffffffffffffULL) == 0) return 0;
  if (x < 0x1p53 && x == floor(x)) {  /* integers: all their digits */
    int n = digits_of((uint64_t)x, digits);
    *e = n - 1;
    while (n > 1 && digits[n - 1] == '0') n--;
    return n;
  }
  if (x >= 0x1p50) return 0;
  double ulp = nextafter(x, INFINITY) - x;
  for (int k = 1; k <= 22; k++) {
    double pw = pow10tab[k], p = x * pw;
    if (p >= 0x1p50) {
      /* No candidate has k - 1 fractional digits or fewer, so each has
      ** at least k: x * 10^(k-1) >= 10^m gives m + 2 digits or more;
      ** one less for safety at the decade edge. */
      double q = x * pow10tab[k - 1] * (1 - 0x1p-40);
      int m = 0;
      while (m < 16 && q >= pow10tab[m + 1]) m++;
      if (q >= 1 && m + 1 > *minp) *minp = m + 1;
      return 0;
    }
    double c = nearbyint(p), best = -1, bestd = 0;
    int nbest = 0;
    for (double m = c - 1; m <= c + 1; m++) {
      if (m <= 0 || m / pw != x) continue;
      double d = fabs(fma(x, pw, -m));
      if (nbest == 0 || d < bestd) best = m, bestd = d, nbest = 1;
      else if (d == bestd) nbest++;
    }
    if (nbest == 0) continue;
    if (nbest > 1) return 0;
    /* the decade of best must hold every candidate: best +- w */
    double w = ulp * pw * 1.01;
    int n = digits_of((uint64_t)best, digits);
    *e = n - 1 - k;  /* x ~ d.ddd * 10^e */
    double lo = pow10tab[n - 1], hi = pow10tab[n];
    if (!(best + w < hi)) return 0;
    if (!(best - w >= lo || (best == lo && w < 0.05 * lo))) return 0;
    while (n > 1 && digits[n - 1] == '0') n--;
    return n;
  }
  return 0;
}

size_t ag_jsonnum_format (double x, char out[AG_JSONNUM_MAX]) {
  char d[17];
  char *o = out;
  int k, e, n, minp = 1;
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
  k = shortest_fast(x, d, &e, &minp);
  if (k == 0) k = shortest(x, d, &e, minp);
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
