/*
** ag_jsonnum.h: numbers as ECMAScript's Number::toString writes them,
** which is what RFC 8785 (JSON Canonicalization Scheme) requires.
*/
#ifndef AG_JSONNUM_H
#define AG_JSONNUM_H

#include <stddef.h>

/* Longest output plus NUL: "-1.7976931348623157e+308" is 24 bytes,
** "-0.0000033333333333333333" is 25. */
#define AG_JSONNUM_MAX 32

/*
** Writes finite `x` to `out` in the ECMAScript form: the shortest digits
** that read back as `x` (the closest such digits when several qualify),
** plain notation for decimal exponents in [-6, 21), "1e+21" style beyond,
** "-0" as "0".  Returns the length (no NUL counted), or 0 when `x` is NaN
** or infinite (`out` is then "").
*/
size_t ag_jsonnum_format(double x, char out[AG_JSONNUM_MAX]);

#endif
