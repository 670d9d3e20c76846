/* SPDX-License-Identifier: LGPL-2.1-only */
/* The common toolkit: the strict integer parser, xvasprintf, the clock, log_dom_*. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xalloc.h"

/* ---- parse_int64 ---- */

static void test_parse_accepts_whole_numbers(void **state)
{
    (void)state;
    int64_t n = -7;
    assert_int_equal(parse_int64("0", 0, 10, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(parse_int64("42", 0, 100, &n), 0);
    assert_int_equal(n, 42);
    assert_int_equal(parse_int64("-5", -10, 10, &n), 0);
    assert_int_equal(n, -5);
    assert_int_equal(parse_int64("+5", -10, 10, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(parse_int64("007", 0, 10, &n), 0); /* decimal, not octal */
    assert_int_equal(n, 7);
    assert_int_equal(parse_int64("9223372036854775807", INT64_MIN, INT64_MAX, &n), 0);
    assert_true(n == INT64_MAX);
    assert_int_equal(parse_int64("-9223372036854775808", INT64_MIN, INT64_MAX, &n), 0);
    assert_true(n == INT64_MIN);
}

static void test_parse_refuses_what_is_not_a_number(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",    " ",   "-",   "+",    "--1", "+-1", " 1",    "1 ", "\t1",
        "1\n", "12x", "x12", "0x10", "1e6", "1.0", "1,000", "١",  "∞",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t n = 99;
        if (parse_int64(bad[i], INT64_MIN, INT64_MAX, &n) != -EINVAL)
            fail_msg("'%s' was taken", bad[i]);
        assert_int_equal(n, 99); /* unchanged on error */
    }
    int64_t n = 99;
    assert_int_equal(parse_int64(NULL, 0, 10, &n), -EINVAL);
    assert_int_equal(n, 99);
}

static void test_parse_bounds_and_overflow(void **state)
{
    (void)state;
    int64_t n = 99;
    /* The bounds are inclusive. */
    assert_int_equal(parse_int64("10", 10, 20, &n), 0);
    assert_int_equal(parse_int64("20", 10, 20, &n), 0);
    assert_int_equal(n, 20);
    n = 99;
    assert_int_equal(parse_int64("9", 10, 20, &n), -ERANGE);
    assert_int_equal(parse_int64("21", 10, 20, &n), -ERANGE);
    assert_int_equal(parse_int64("-1", 0, 20, &n), -ERANGE);
    /* Beyond int64_t is out of range too, not junk. */
    assert_int_equal(parse_int64("9223372036854775808", INT64_MIN, INT64_MAX, &n), -ERANGE);
    assert_int_equal(parse_int64("-9223372036854775809", INT64_MIN, INT64_MAX, &n), -ERANGE);
    assert_int_equal(parse_int64("99999999999999999999999", 0, INT64_MAX, &n), -ERANGE);
    assert_int_equal(n, 99);
    /* The limit on sizes, as the cache uses it. */
    assert_int_equal(parse_int64("1099511627776", 0, LIMIT_KIB_MAX, &n), 0);
    assert_int_equal(parse_int64("1099511627777", 0, LIMIT_KIB_MAX, &n), -ERANGE);
    assert_int_equal(parse_int64("35184372088832", 0, LIMIT_KIB_MAX, &n), -ERANGE);
}

/* ---- limits ---- */

static void test_limits_agree(void **state)
{
    (void)state;
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, LIMIT_KIB_MAX);
    assert_string_equal(buf, LIMIT_KIB_MAX_TEXT);
    assert_int_equal(LIMIT_DOMID_MAX, 0x7FF0 - 1); /* DOMID_FIRST_RESERVED - 1 */
    assert_true(LIMIT_ADVANCE_MAX_S == 86400.0);
    assert_true(LIMIT_POLL_INTERVAL_MIN_S < LIMIT_POLL_INTERVAL_MAX_S);
    assert_true(LIMIT_BALANCE_INTERVAL_MIN_S < LIMIT_BALANCE_INTERVAL_MAX_S);
}

/* ---- xalloc ---- */

static char *vfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *vfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

static void test_xvasprintf(void **state)
{
    (void)state;
    char *s = vfmt("domid %d: %s = %" PRId64, 7, "memory/target", (int64_t)-1);
    assert_string_equal(s, "domid 7: memory/target = -1");
    free(s);
    s = vfmt("%s", "");
    assert_string_equal(s, "");
    free(s);
    /* Longer than any stack buffer a caller might have used. */
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    s = vfmt("<%s>", big);
    assert_int_equal(strlen(s), sizeof(big) + 1);
    assert_int_equal(s[0], '<');
    assert_int_equal(s[sizeof(big)], '>');
    free(s);
    s = xasprintf("%d-%d", 1, 2);
    assert_string_equal(s, "1-2");
    free(s);
    s = xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = xstrndup("ab", 10);
    assert_string_equal(s, "ab");
    free(s);
}

/* jansson allocates through xmalloc here (set by the test support before main). */
static int counted_mallocs;
static void *counting_malloc(size_t n)
{
    counted_mallocs++;
    return xmalloc(n);
}

static void test_jansson_allocates_through_the_wrapper(void **state)
{
    (void)state;
    json_malloc_t m = NULL;
    json_free_t f = NULL;
    json_get_alloc_funcs(&m, &f);
    assert_ptr_equal(m, xmalloc);
    assert_ptr_equal(f, free);
    json_set_alloc_funcs(counting_malloc, free);
    json_t *j = json_pack("{s:i}", "a", 1);
    json_decref(j);
    json_set_alloc_funcs(xmalloc, free);
    assert_true(counted_mallocs > 0);
}

/* ---- clock ---- */

static void test_clock_is_monotonic(void **state)
{
    (void)state;
    int64_t a = clock_monotonic_ms();
    usleep(20 * 1000);
    int64_t b = clock_monotonic_ms();
    assert_true(a >= 0);
    assert_true(b - a >= 19); /* the clock's ms are floored */
}

/* ---- log_dom_* ---- */

/* What the calls print to stderr (the foreground log). */
static char *captured(void (*fn)(void))
{
    char path[] = "/tmp/test_common.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = xcalloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
    close(fd);
    return buf;
}

static void log_some(void)
{
    log_dom_warnx(7, "cannot set %s to %d KiB", "memory/target", 1024);
    log_dom_info(UINT32_C(32751), "balloon moving again");
    log_dom_debug(INT64_C(3), "maxmem %" PRId64 " KiB", (int64_t)4096);
    errno = ENOENT;
    log_dom_warn(0, "cannot read %s", "memory/dynamic-min");
    log_warnx("no subject");
}

static void test_log_dom_prefix(void **state)
{
    (void)state;
    log_init("test_common", true, 1);
    log_quiet(false);
    char *out = captured(log_some);
    log_quiet(true);
    assert_non_null(strstr(out, "warn: domid 7: cannot set memory/target to 1024 KiB\n"));
    assert_non_null(strstr(out, "info: domid 32751: balloon moving again\n"));
    assert_non_null(strstr(out, "debug: domid 3: maxmem 4096 KiB\n"));
    assert_non_null(strstr(
        out, "warn: domid 0: cannot read memory/dynamic-min: No such file or directory\n"));
    assert_non_null(strstr(out, "warn: no subject\n"));
    assert_null(strstr(out, "domid -1"));
    free(out);
}

int main(void)
{
    log_init("test_common", true, 0);
    log_quiet(true);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts_whole_numbers),
        cmocka_unit_test(test_parse_refuses_what_is_not_a_number),
        cmocka_unit_test(test_parse_bounds_and_overflow),
        cmocka_unit_test(test_limits_agree),
        cmocka_unit_test(test_xvasprintf),
        cmocka_unit_test(test_jansson_allocates_through_the_wrapper),
        cmocka_unit_test(test_clock_is_monotonic),
        cmocka_unit_test(test_log_dom_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
