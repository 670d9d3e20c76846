/* SPDX-License-Identifier: LGPL-2.1-only */
/* Finding the repository's files from a test binary, wherever it was started. */
#ifndef SQUEEZED_TEST_PATHS_H
#define SQUEEZED_TEST_PATHS_H

/* The path of rel (a path relative to the repository root, e.g. "openapi.json" or
 * "tests/fuzz/corpus"): $env when env is not NULL and that variable is set and not empty;
 * else the first readable rel found from the binary's own directory upwards, up to four
 * levels (build/tests, build/asan/tests, build/fuzz all sit below the checkout); else rel
 * itself (relative to the working directory). New string; never NULL. */
char *support_find_file(const char *env, const char *rel);

#endif
