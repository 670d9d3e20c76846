/* SPDX-License-Identifier: LGPL-2.1-only */
/* cmocka checks the front end's tests share: JSON equality, Prometheus exposition text. */
#include "tests/support/checks.h"

#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/xalloc.h"

void json_expect(const json_t *got, const char *expected)
{
    json_error_t jerr;
    json_t *want = json_loads(expected, JSON_DECODE_ANY, &jerr);

    if (want == NULL)
        fail_msg("bad expected JSON %s: %s", expected, jerr.text);
    if (!json_equal((json_t *)got, want)) {
        char *g = got != NULL ? json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        print_error("got      %s\nexpected %s\n", g != NULL ? g : "(nothing)", w);
        free(g);
        free(w);
        json_decref(want);
        fail();
    }
    json_decref(want);
}

int check_exposition(const char *text)
{
    regex_t help, type, sample;
    int samples = 0;
    char declared[4096] = " ";
    char *copy = strdup(text);
    char *save = NULL;

    assert_int_equal(regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* [^\n]*$", REG_EXTENDED),
                     0);
    assert_int_equal(regcomp(&type,
                             "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) "
                             "(counter|gauge|summary|histogram|untyped)$",
                             REG_EXTENDED),
                     0);
    assert_int_equal(regcomp(&sample,
                             "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
                             "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
                             "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*\\})?"
                             " (NaN|[+-]Inf|[-+]?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?)$",
                             REG_EXTENDED),
                     0);
    assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    for (char *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        regmatch_t m[2];
        if (regexec(&help, line, 0, NULL, 0) == 0)
            continue;
        if (regexec(&type, line, 2, m, 0) == 0) {
            char name[256];
            snprintf(name, sizeof(name), " %.*s ", (int)(m[1].rm_eo - m[1].rm_so),
                     line + m[1].rm_so);
            if (strstr(declared, name) != NULL)
                fail_msg("family declared twice: %s", line);
            strncat(declared, name + 1, sizeof(declared) - strlen(declared) - 1);
            continue;
        }
        if (regexec(&sample, line, 2, m, 0) != 0)
            fail_msg("not a Prometheus line: '%s'", line);
        char name[256];
        snprintf(name, sizeof(name), " %.*s ", (int)(m[1].rm_eo - m[1].rm_so),
                 line + m[1].rm_so);
        /* summary and histogram samples: _sum, _count, _bucket of a declared family */
        char *suffix = strstr(name, "_sum ");
        if (suffix == NULL)
            suffix = strstr(name, "_count ");
        if (suffix == NULL)
            suffix = strstr(name, "_bucket ");
        if (strstr(declared, name) == NULL) {
            if (suffix == NULL)
                fail_msg("sample of an undeclared family: %s", line);
            strcpy(suffix, " ");
            if (strstr(declared, name) == NULL)
                fail_msg("sample of an undeclared family: %s", line);
        }
        samples++;
    }
    regfree(&help);
    regfree(&type);
    regfree(&sample);
    free(copy);
    return samples;
}

void expect_line(const char *text, const char *line)
{
    char *want = xasprintf("\n%s\n", line);
    if (strstr(text, want) == NULL)
        fail_msg("missing line '%s' in:\n%s", line, text);
    free(want);
}
