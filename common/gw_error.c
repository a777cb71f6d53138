/* SPDX-License-Identifier: MIT */
/* gw_error.c - gw_strerror(): one text for errno, GW_E*, MDB_* and UV_* codes (see gw_error.h). */
#include "gw_error.h"

#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void gw_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *gw_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case GW_EBADMSG:
        return "malformed message";
    case GW_EFULL:
        return "table or queue full";
    case GW_EEMPTY:
        return "empty";
    case GW_ENOTFOUND:
        return "not found";
    case GW_EAUTH:
        return "authentication failed";
    case GW_EREPLAY:
        return "replayed frame";
    case GW_ECONFIG:
        return "bad configuration";
    case GW_ELAYOUT:
        return "shared memory layout mismatch";
    case GW_ETOOBIG:
        return "too big";
    case GW_EFORBIDDEN:
        return "forbidden by policy";
    case GW_EBUSY:
        return "busy";
    case GW_EUNSAFE:
        return "unsafe ownership or permissions";
    default:
        break;
    }
    if (err <= MDB_KEYEXIST && err >= MDB_LAST_ERRCODE)
        return mdb_strerror(err);
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}
