/* SPDX-License-Identifier: LGPL-2.1-only */
/* Finding the repository's files from a test binary, wherever it was started. */
#include "tests/support/paths.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xalloc.h"

char *support_find_file(const char *env, const char *rel)
{
    const char *value = env != NULL ? getenv(env) : NULL;
    char exe[PATH_MAX];
    ssize_t n;

    if (value != NULL && value[0] != '\0')
        return xstrdup(value);
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *dir = dirname(exe);
        for (int up = 0; up <= 4; up++) {
            char path[PATH_MAX + 64];
            int len = snprintf(path, sizeof(path), "%s", dir);
            for (int i = 0; i < up; i++)
                len += snprintf(path + len, sizeof(path) - (size_t)len, "/..");
            snprintf(path + len, sizeof(path) - (size_t)len, "/%s", rel);
            if (access(path, R_OK) == 0)
                return xstrdup(path);
        }
    }
    return xstrdup(rel);
}
