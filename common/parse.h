/* SPDX-License-Identifier: LGPL-2.1-only */
/* The one strict integer parser, for xenstore values, configuration and persisted state. */
#ifndef SQUEEZED_PARSE_H
#define SQUEEZED_PARSE_H

#include <stdint.h>

/* Parse s as a whole decimal integer: an optional sign then digits, nothing before or
 * after (no blanks). Returns 0 and sets *out when it is one within [min, max];
 * -EINVAL when s is NULL, empty or not a decimal integer; -ERANGE when it is one but
 * outside [min, max] (also beyond int64_t). *out is unchanged on error. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
