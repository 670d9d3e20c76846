/* SPDX-License-Identifier: LGPL-2.1-only */
/* Allocation wrappers that abort on out-of-memory, so callers never check. */
#include "common/xalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t size) __attribute__((noreturn));
static void oom(size_t size)
{
    fprintf(stderr, "squeezed: out of memory allocating %zu bytes\n", size);
    abort();
}

void xalloc_die(const char *what)
{
    fprintf(stderr, "squeezed: out of memory: %s\n", what);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        oom(size);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        oom(SIZE_MAX);
    size_t bytes = n * size;
    void *q = realloc(p, bytes != 0 ? bytes : 1);
    if (q == NULL)
        oom(n * size);
    return q;
}

char *xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *p = xmalloc(len);
    memcpy(p, s, len);
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int len = vsnprintf(NULL, 0, fmt, ap);
    if (len < 0) {
        /* Only a bad format or a wide character that cannot be converted. */
        fprintf(stderr, "squeezed: cannot format '%s'\n", fmt);
        abort();
    }
    char *p = xmalloc((size_t)len + 1);
    vsnprintf(p, (size_t)len + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}
