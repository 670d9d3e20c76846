#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# embed.sh FILE SYMBOL: print a C file defining `const unsigned char SYMBOL[]` (FILE's
# bytes plus a NUL) and `const size_t SYMBOL_len` (without the NUL). Only od and awk
# (POSIX, in every Debian base system): no xxd needed.
set -eu
file=$1
sym=$2
echo "/* Generated from $file by scripts/embed.sh: do not edit. */"
echo "#include <stddef.h>"
od -An -v -tu1 "$file" | awk -v sym="$sym" '
BEGIN { printf "const unsigned char %s[] = {\n", sym; n = 0 }
{
    for (i = 1; i <= NF; i++) {
        printf "%s,", $i
        if (++n % 24 == 0) printf "\n"
    }
}
END {
    printf "0};\nconst size_t %s_len = %d;\n", sym, n
}'
