/* SPDX-License-Identifier: LGPL-2.1-only */
/* Allocation wrappers that abort on out-of-memory, so callers never check. */
#ifndef SQUEEZED_XALLOC_H
#define SQUEEZED_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

/* Report that memory ran out while getting `what` and abort: for allocations made
 * outside these wrappers (open_memstream). */
void xalloc_die(const char *what) __attribute__((noreturn));
/* malloc(size); never returns NULL (aborts with a message instead). */
void *xmalloc(size_t size);
/* calloc(n, size) with overflow check; never returns NULL. */
void *xcalloc(size_t n, size_t size);
/* realloc(p, n * size) with overflow check; never returns NULL. */
void *xreallocarray(void *p, size_t n, size_t size);
/* strdup(s); s must not be NULL; never returns NULL. */
char *xstrdup(const char *s);
/* strndup(s, n): at most n bytes of s; s must not be NULL; never returns NULL. */
char *xstrndup(const char *s, size_t n);
/* asprintf into a new string the caller frees; never returns NULL. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* vasprintf into a new string the caller frees; ap is consumed; never returns NULL. */
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* jansson allocates through xmalloc (json_set_alloc_funcs(xmalloc, free)), set once at
 * start-up by the daemon, the tests and the fuzzer: a jansson constructor or json_dumps
 * then never returns NULL for want of memory. */

#endif
