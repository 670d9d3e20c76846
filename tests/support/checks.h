/* SPDX-License-Identifier: LGPL-2.1-only */
/* cmocka checks the front end's tests share: JSON equality, Prometheus exposition text. */
#ifndef SQUEEZED_TEST_CHECKS_H
#define SQUEEZED_TEST_CHECKS_H

#include <jansson.h>

/* got (borrowed, may be NULL) equals the JSON text expected; prints both and fails the
 * test otherwise. */
void json_expect(const json_t *got, const char *expected);

/* Every line of text is a # HELP / # TYPE comment or a sample of a declared family (a
 * family declared once; _sum and _count samples of a declared summary), and text ends
 * with a newline; fails the test otherwise. Returns the number of samples. */
int check_exposition(const char *text);

/* text holds line as a whole line (not its first). */
void expect_line(const char *text, const char *line);

#endif
