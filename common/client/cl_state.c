/* SPDX-License-Identifier: MIT */
/* cl_state.c - the client's state file (see cl_state.h). */
#include "cl_state.h"
#include "gw_error.h"
#include "gw_text.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cl_state_init(struct cl_state *st, const char *gateway, uint16_t local_port)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->gateway, sizeof(st->gateway), "%s", gateway ? gateway : "");
    st->local_port = local_port;
    st->next_mid = -1;
}

int cl_state_path(const char *xdg_state, const char *home, const char *gateway, uint16_t port,
                  char *out, size_t len)
{
    /* File names carry the gateway as written, except '/' (never in a
     * HOST:PORT, but a path separator must not sneak in). */
    char gw[256];
    size_t n = 0;
    for (const char *p = gateway; *p && n + 1 < sizeof(gw); p++)
        gw[n++] = *p == '/' ? '_' : *p;
    gw[n] = '\0';
    int w;
    if (xdg_state && xdg_state[0] == '/')
        w = snprintf(out, len, "%s/coapgw/client-%s-%u.json", xdg_state, gw, (unsigned)port);
    else if (home && home[0] == '/')
        w = snprintf(out, len, "%s/.local/state/coapgw/client-%s-%u.json", home, gw,
                     (unsigned)port);
    else
        return -ENOENT;
    return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

static void copy_str(char *dst, size_t len, json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    snprintf(dst, len, "%s", s ? s : "");
}

int cl_state_load(const char *path, struct cl_state *st, char *err, size_t errlen)
{
    char gw[256];
    uint16_t port = st->local_port;
    snprintf(gw, sizeof(gw), "%s", st->gateway);
    cl_state_init(st, gw, port);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    json_error_t je;
    json_t *o = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!o || !json_is_object(o)) {
        snprintf(err, errlen, "%s: not a JSON object (%s)", path, o ? "other JSON" : je.text);
        json_decref(o);
        return GW_EBADMSG;
    }
    copy_str(st->id, sizeof(st->id), o, "id");
    copy_str(st->account, sizeof(st->account), o, "account");
    copy_str(st->security, sizeof(st->security), o, "security");
    st->sticky = json_is_true(json_object_get(o, "sticky"));
    st->created = json_integer_value(json_object_get(o, "created"));
    st->expires = json_integer_value(json_object_get(o, "expires"));
    json_t *mid = json_object_get(o, "next_mid");
    st->next_mid =
        json_is_integer(mid) && json_integer_value(mid) >= 0 && json_integer_value(mid) <= 0xffff
            ? (int32_t)json_integer_value(mid)
            : -1;
    const char *fgw = json_string_value(json_object_get(o, "gateway"));
    json_int_t fport = json_integer_value(json_object_get(o, "local_port"));
    int rc = 0;
    if (!fgw || strcmp(fgw, st->gateway) || fport != st->local_port) {
        /* Another gateway's or port's file under this name: not ours. */
        snprintf(err, errlen, "%s: records gateway %s port %lld, not %s port %u", path,
                 fgw ? fgw : "(none)", (long long)fport, st->gateway, (unsigned)st->local_port);
        cl_state_init(st, gw, port);
        rc = GW_EBADMSG;
    }
    json_decref(o);
    return rc;
}

static int mkdir_p(char *dir)
{
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(dir, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -errno;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

json_t *cl_state_json(const struct cl_state *st)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
    if (st->id[0]) {
        bad |= json_object_set_new(o, "id", json_string(st->id));
        bad |= json_object_set_new(o, "account", json_string(st->account));
        bad |= json_object_set_new(o, "security", json_string(st->security));
        bad |= json_object_set_new(o, "sticky", json_boolean(st->sticky));
        bad |= json_object_set_new(o, "created", json_integer(st->created));
        bad |= json_object_set_new(o, "expires", json_integer(st->expires));
    }
    bad |= json_object_set_new(o, "gateway", json_string(st->gateway));
    bad |= json_object_set_new(o, "local_port", json_integer(st->local_port));
    if (st->next_mid >= 0)
        bad |= json_object_set_new(o, "next_mid", json_integer(st->next_mid));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int cl_state_save(const char *path, const struct cl_state *st)
{
    char dir[1100], tmp[1100];
    const char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) >= sizeof(dir) || strlen(path) + 16 >= sizeof(tmp))
        return -ENAMETOOLONG;
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    int rc = mkdir_p(dir);
    if (rc)
        return rc;
    json_t *o = cl_state_json(st);
    if (!o)
        return -ENOMEM;
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        return -ENOMEM;
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        free(text);
        return rc;
    }
    size_t n = strlen(text), off = 0;
    text[n] = '\0';
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (!rc && write(fd, "\n", 1) != 1)
        rc = -EIO;
    /* The mode holds even where the umask or an older file said otherwise. */
    if (!rc && fchmod(fd, 0600) != 0)
        rc = -errno;
    if (!rc && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && !rc)
        rc = -errno;
    free(text);
    if (!rc && rename(tmp, path) != 0)
        rc = -errno;
    if (rc)
        unlink(tmp);
    return rc;
}

bool cl_state_live(const struct cl_state *st, int64_t now)
{
    return st->id[0] && (st->expires == 0 || st->expires > now);
}

int cl_state_from_session(struct cl_state *st, const char *const *loc, unsigned nloc,
                          const uint8_t *payload, size_t len, char *err, size_t errlen)
{
    if (nloc != 2 || strcmp(loc[0], "sessions") || !loc[1][0] || strlen(loc[1]) >= sizeof(st->id)) {
        snprintf(err, errlen, "the gateway's answer has no Location-Path sessions/<id>");
        return GW_EBADMSG;
    }
    json_error_t je;
    json_t *o = json_loadb((const char *)payload, len, 0, &je);
    if (!o || !json_is_object(o)) {
        snprintf(err, errlen, "the gateway's session document is not a JSON object: %s",
                 o ? "" : je.text);
        json_decref(o);
        return GW_EBADMSG;
    }
    const char *pid = json_string_value(json_object_get(o, "id"));
    if (pid && strcmp(pid, loc[1])) {
        snprintf(err, errlen, "the session document's id %s differs from Location-Path %s", pid,
                 loc[1]);
        json_decref(o);
        return GW_EBADMSG;
    }
    snprintf(st->id, sizeof(st->id), "%s", loc[1]);
    copy_str(st->account, sizeof(st->account), o, "account");
    copy_str(st->security, sizeof(st->security), o, "security");
    st->sticky = json_is_true(json_object_get(o, "sticky"));
    st->created = json_integer_value(json_object_get(o, "created"));
    st->expires = json_integer_value(json_object_get(o, "expires"));
    json_decref(o);
    return 0;
}

int cl_jwt_sub(const char *jwt, char *out, size_t len)
{
    const char *a = strchr(jwt, '.');
    const char *b = a ? strchr(a + 1, '.') : NULL;
    if (!b || b - a - 1 > 8192)
        return GW_EBADMSG;
    /* base64url without padding (RFC 7515 2) */
    uint8_t dec[6200];
    size_t n;
    if (gw_b64url_decode(a + 1, (size_t)(b - a - 1), dec, sizeof(dec), &n) != 0)
        return GW_EBADMSG;
    json_t *o = json_loadb((const char *)dec, n, 0, NULL);
    const char *sub = json_string_value(json_object_get(o, "sub"));
    int rc = sub && strlen(sub) < len ? 0 : GW_EBADMSG;
    if (!rc)
        snprintf(out, len, "%s", sub);
    json_decref(o);
    return rc;
}
