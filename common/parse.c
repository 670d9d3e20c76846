/* SPDX-License-Identifier: LGPL-2.1-only */
/* The one strict integer parser, for xenstore values, configuration and persisted state. */
#include "common/parse.h"

#include <errno.h>
#include <stdlib.h>

int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (s == NULL)
        return -EINVAL;
    /* strtoll would skip blanks; a value with them is not one we wrote. */
    const char *digits = (*s == '-' || *s == '+') ? s + 1 : s;
    if (*digits < '0' || *digits > '9')
        return -EINVAL;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}
