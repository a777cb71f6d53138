/* SPDX-License-Identifier: MIT */
/* fuzz_util.h - helpers the fuzz targets share (temporary directories). */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Removes directory d and what is in it, descending at most depth levels. */
static inline void fuzz_rmtree(const char *d, int depth)
{
    DIR *dp = opendir(d);
    if (!dp)
        return;
    struct dirent *e;
    char p[1200];
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
        struct stat st;
        if (depth > 0 && lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            fuzz_rmtree(p, depth - 1);
        else
            unlink(p);
    }
    closedir(dp);
    rmdir(d);
}

#endif
