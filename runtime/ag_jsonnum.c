/*
** ag_jsonnum.c: ECMAScript Number::toString for finite doubles (ECMA-262
** 7.1.12.1, the number form RFC 8785 section 3.2.2.3 adopts).
**
** Digits: the fewest decimal digits that read back as x (round to nearest,
** ties to even, as strtod reads), and of those the closest to x.  That is
** what Ryu computes (Ulf Adams, "Ryu: fast float-to-string conversion",
** PLDI 2018), written here after the paper and its reference d2s.c: the
** bounds of x's rounding interval scaled by a power of ten with 128-bit
** fixed-point powers of five (ag_jsonnum_tab.h), then digits dropped while
** the scaled bounds still differ.  Integers below 2^53 take a shorter way:
** their own digits are the shortest (the spacing of doubles there is at
** most 1, so no other integer, hence no shorter decimal, reads back).
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ag_jsonnum.h"
#include "ag_jsonnum_tab.h"

__extension__ typedef unsigned __int128 u128;

/* bitlen(5^e) for e >= 1 (1 for e == 0), floor(e log10 2), floor(e
** log10 5): the reference's approximations, exact over the ranges used. */
static int pow5bits (int e) { return (int)(((uint32_t)e * 1217359u) >> 19) + 1; }
static uint32_t log10pow2 (int e) { return ((uint32_t)e * 78913u) >> 18; }
static uint32_t log10pow5 (int e) { return ((uint32_t)e * 732923u) >> 20; }

static int pow5factor (uint64_t v) {
  int n = 0;
  while (v % 5 == 0) v /= 5, n++;
  return n;
}

static int multipleof5pow (uint64_t v, uint32_t p) { return pow5factor(v) >= (int)p; }
static int multipleof2pow (uint64_t v, uint32_t p) { return (v & ((1ull << p) - 1)) == 0; }

/* (m * mul) >> j, mul a 128-bit table entry, j >= 64. */
static uint64_t mulshift64 (uint64_t m, const uint64_t mul[2], int j) {
  u128 b0 = (u128)m * mul[0], b2 = (u128)m * mul[1];
  return (uint64_t)(((b0 >> 64) + b2) >> (j - 64));
}

/*
** Shortest digits of the finite double with these bits, x > 0: returns
** the digits as an integer and sets *exp10 (x ~ out * 10^*exp10).
*/
static uint64_t ryu (uint64_t bits, int *exp10) {
  uint64_t mant = bits & ((1ull << 52) - 1);
  uint32_t bexp = (uint32_t)(bits >> 52) & 0x7ff;
  int e2;
  uint64_t m2;
  if (bexp == 0) e2 = 1 - 1023 - 52 - 2, m2 = mant;
  else e2 = (int)bexp - 1023 - 52 - 2, m2 = (1ull << 52) | mant;
  int even = (m2 & 1) == 0, accept = even;
  uint64_t mv = 4 * m2;
  uint32_t mmshift = mant != 0 || bexp <= 1;  /* lower gap halved at 2^k */
  uint64_t vr, vp, vm;
  int e10, vmzeros = 0, vrzeros = 0;
  if (e2 >= 0) {
    uint32_t q = log10pow2(e2) - (e2 > 3);
    int k = 125 + pow5bits((int)q) - 1, i = -e2 + (int)q + k;
    e10 = (int)q;
    vr = mulshift64(4 * m2, pow5_inv[q], i);
    vp = mulshift64(4 * m2 + 2, pow5_inv[q], i);
    vm = mulshift64(4 * m2 - 1 - mmshift, pow5_inv[q], i);
    if (q <= 21) {  /* is an exact quotient by 10^q possible? */
      if (mv % 5 == 0) vrzeros = multipleof5pow(mv, q);
      else if (accept) vmzeros = multipleof5pow(mv - 1 - mmshift, q);
      else vp -= (uint64_t)multipleof5pow(mv + 2, q);
    }
  }
  else {
    uint32_t q = log10pow5(-e2) - (-e2 > 1);
    int i = -e2 - (int)q, k = pow5bits(i) - 125, j = (int)q - k;
    e10 = (int)q + e2;
    vr = mulshift64(4 * m2, pow5[i], j);
    vp = mulshift64(4 * m2 + 2, pow5[i], j);
    vm = mulshift64(4 * m2 - 1 - mmshift, pow5[i], j);
    if (q <= 1) {
      vrzeros = 1;
      if (accept) vmzeros = mmshift == 1;
      else vp--;
    }
    else if (q < 63)  /* mv * 5^i / 2^q is exact iff 2^q divides mv */
      vrzeros = multipleof2pow(mv, q);
  }
  int removed = 0;
  unsigned last = 0;
  uint64_t out;
  if (vmzeros || vrzeros) {  /* the general case: track exactness */
    while (vp / 10 > vm / 10) {
      vmzeros &= vm % 10 == 0;
      vrzeros &= last == 0;
      last = (unsigned)(vr % 10);
      vr /= 10, vp /= 10, vm /= 10, removed++;
    }
    if (vmzeros) {
      while (vm % 10 == 0) {
        vrzeros &= last == 0;
        last = (unsigned)(vr % 10);
        vr /= 10, vp /= 10, vm /= 10, removed++;
      }
    }
    if (vrzeros && last == 5 && vr % 2 == 0) last = 4;  /* a tie: to even */
    out = vr + ((vr == vm && (!accept || !vmzeros)) || last >= 5);
  }
  else {  /* the common case */
    int up = 0;
    if (vp / 100 > vm / 100) {
      up = vr % 100 >= 50;
      vr /= 100, vp /= 100, vm /= 100, removed += 2;
    }
    while (vp / 10 > vm / 10) {
      up = vr % 10 >= 5;
      vr /= 10, vp /= 10, vm /= 10, removed++;
    }
    out = vr + (vr == vm || up);
  }
  *exp10 = e10 + removed;
  return out;
}

/* Decimal digits of m >= 1 into digits; returns their count. */
static int digits_of (uint64_t m, char digits[20]) {
  char b[20];
  int n = 0;
  do { b[n++] = (char)('0' + m % 10); m /= 10; } while (m > 0);
  for (int i = 0; i < n; i++) digits[i] = b[n - 1 - i];
  return n;
}

/* Shortest digits of x > 0 without trailing zeros; returns their count k
** and sets *e (x ~ d.ddd * 10^e). */
static int shortest (double x, char digits[20], int *e) {
  int n, e10 = 0;
  if (x < 0x1p53 && x == floor(x)) n = digits_of((uint64_t)x, digits);
  else {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    n = digits_of(ryu(bits, &e10), digits);
  }
  *e = e10 + n - 1;
  while (n > 1 && digits[n - 1] == '0') n--;
  return n;
}

size_t ag_jsonnum_format (double x, char out[AG_JSONNUM_MAX]) {
  char d[20];
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
    int x10 = n - 1, ax = abs(x10);
    *o++ = d[0];
    if (k > 1) {
      *o++ = '.';
      memcpy(o, d + 1, (size_t)(k - 1));
      o += k - 1;
    }
    *o++ = 'e';
    *o++ = x10 >= 0 ? '+' : '-';
    if (ax >= 100) *o++ = (char)('0' + ax / 100);
    if (ax >= 10) *o++ = (char)('0' + ax / 10 % 10);
    *o++ = (char)('0' + ax % 10);
  }
  *o = '\0';
  return (size_t)(o - out);
}
