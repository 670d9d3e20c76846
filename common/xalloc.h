/* SPDX-License-Identifier: LGPL-2.1-only */
/* Allocation wrappers that abort on out-of-memory, so callers never check. */
#ifndef SQUEEZED_XALLOC_H
#define SQUEEZED_XALLOC_H

#include <stddef.h>

/* malloc(size); never returns NULL (aborts with a message instead). */
void *xmalloc(size_t size);
/* calloc(n, size) with overflow check; never returns NULL. */
void *xcalloc(size_t n, size_t size);
/* realloc(p, n * size) with overflow check; never returns NULL. */
void *xreallocarray(void *p, size_t n, size_t size);
/* strdup(s); s must not be NULL; never returns NULL. */
char *xstrdup(const char *s);
/* asprintf into a new string the caller frees; never returns NULL. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
