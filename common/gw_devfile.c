/* SPDX-License-Identifier: MIT */
/* gw_devfile.c - devices file parser and generator (see gw_devfile.h). */
#include "gw_devfile.h"
#include "gw_addr.h"
#include "gw_error.h"
#include "gw_map.h"
#include "gw_text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#define MAX_FIELDS 7

static const char *const column_names[MAX_FIELDS] = {
    "mac", "address", "type", "key", "plain_port", "secure_port", "sim",
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits s in place at ',' into trimmed fields. Returns the field count, or
 * MAX_FIELDS + 1 when there are more than MAX_FIELDS. */
static int split_fields(char *s, char *f[MAX_FIELDS])
{
    int n = 0;
    for (;;) {
        char *e = strchr(s, ',');
        if (e)
            *e = '\0';
        if (n == MAX_FIELDS)
            return MAX_FIELDS + 1;
        while (is_blank(*s))
            s++;
        size_t l = strlen(s);
        while (l && is_blank(s[l - 1]))
            s[--l] = '\0';
        f[n++] = s;
        if (!e)
            return n;
        s = e + 1;
    }
}

/* Drops a trailing "\n" / "\r\n" (and stray "\r") in place; returns the new length. */
static size_t chomp(char *s)
{
    size_t l = strlen(s);
    while (l && (s[l - 1] == '\n' || s[l - 1] == '\r'))
        s[--l] = '\0';
    return l;
}

/* "" keeps *port at its default. */
static int parse_port(const char *s, uint16_t *port)
{
    if (!*s)
        return 0;
    uint64_t v;
    if (gw_dec_parse(s, 5, 65535, &v) != 0 || v < 1)
        return GW_EBADMSG;
    *port = (uint16_t)v;
    return 0;
}

static int parse_fields(char *const f[], int nf, struct gw_device *d, const char **why)
{
    struct gw_device t;
    memset(&t, 0, sizeof(t));
    t.plain_port = GW_DEV_PLAIN_PORT;
    t.secure_port = GW_DEV_SECURE_PORT;
    const char *w = NULL;
    if (nf < 4)
        w = "too few fields (need mac,address,type,key)";
    else if (nf > MAX_FIELDS)
        w = "too many fields (at most mac,address,type,key,plain_port,secure_port,sim)";
    else if (gw_mac_parse(f[0], strlen(f[0]), t.mac) != 0)
        w = "bad mac (need 16 hex digits)";
    else if (inet_pton(AF_INET, f[1], t.addr) == 1)
        t.family = 4;
    else if (inet_pton(AF_INET6, f[1], t.addr) == 1)
        t.family = 6;
    else
        w = "bad address (need an IPv4 or IPv6 literal)";
    if (!w) {
        if (strcasecmp(f[2], "normal") == 0)
            t.type = GW_DEV_NORMAL;
        else if (strcasecmp(f[2], "milli") == 0)
            t.type = GW_DEV_MILLI;
        else
            w = "bad type (need normal or milli)";
    }
    if (!w && gw_hex_decode(f[3], strlen(f[3]), t.key, sizeof(t.key)) != 0)
        w = "bad key (need 32 hex digits)";
    if (!w && nf > 4 && parse_port(f[4], &t.plain_port) != 0)
        w = "bad plain_port (need 1..65535)";
    if (!w && nf > 5 && parse_port(f[5], &t.secure_port) != 0)
        w = "bad secure_port (need 1..65535)";
    if (!w && nf > 6) {
        if (strlen(f[6]) >= sizeof(t.sim))
            w = "sim column too long";
        else
            memcpy(t.sim, f[6], strlen(f[6]) + 1);
    }
    if (!w && t.plain_port == t.secure_port)
        w = "plain_port and secure_port are equal";
    if (w) {
        if (why)
            *why = w;
        return GW_EBADMSG;
    }
    *d = t;
    return 0;
}

int gw_devfile_parse_line(const char *line, struct gw_device *d, const char **why)
{
    char buf[GW_DEVFILE_LINE_MAX + 3];
    size_t l = strlen(line);
    if (l >= sizeof(buf)) {
        if (why)
            *why = "line too long";
        return GW_EBADMSG;
    }
    memcpy(buf, line, l + 1);
    if (chomp(buf) > GW_DEVFILE_LINE_MAX) {
        if (why)
            *why = "line too long";
        return GW_EBADMSG;
    }
    char *f[MAX_FIELDS];
    int nf = split_fields(buf, f);
    return parse_fields(f, nf, d, why);
}

/* What gw_devfile_load has seen so far, to refuse a second device on a MAC
 * or on an endpoint with one clear line naming the first.
 *
 * S7.2: answers from the mesh are matched to a device by the endpoint
 * (family, address, port) they come from, so two devices on one endpoint (a
 * device's plain port equal to another's secure port included) cannot both
 * work: the later line is refused at load.
 *
 * One record per MAC and per endpoint, with the MAC that took it and its
 * line, in an array found through a gw_map multimap from the key's hash
 * (the file is the operator's, so the unkeyed hash is enough; colliding
 * hashes are told apart by the key). */
#define SEEN_KEY 19 /* the longer key: family, address, port */
struct seen_rec {
    uint8_t key[SEEN_KEY]; /* kind byte first: MAC and endpoint keys never meet */
    uint8_t mac[GW_MAC_LEN];
    int line;
};
struct seen {
    struct gw_map idx;
    struct seen_rec *v;
    size_t n, cap;
};
enum { SEEN_MAC = 1, SEEN_EP = 2 };

static void seen_key_mac(const struct gw_device *d, uint8_t key[SEEN_KEY])
{
    memset(key, 0, SEEN_KEY);
    key[0] = SEEN_MAC;
    memcpy(key + 1, d->mac, GW_MAC_LEN);
}

static void seen_key_ep(const struct gw_device *d, uint16_t port, uint8_t key[SEEN_KEY])
{
    /* family is 4 or 6, never SEEN_MAC: the first byte tells the kinds apart */
    GW_STATIC_ASSERT(SEEN_MAC != 4 && SEEN_MAC != 6, "kind byte");
    key[0] = d->family;
    memcpy(key + 1, d->addr, 16);
    key[17] = (uint8_t)(port >> 8);
    key[18] = (uint8_t)port;
}

static const struct seen_rec *seen_get(const struct seen *s, const uint8_t key[SEEN_KEY])
{
    uint64_t h = gw_hash64(key, SEEN_KEY, GW_HASH_SEED);
    for (uint32_t i = gw_map_first(&s->idx, h); i != GW_MAP_END; i = gw_map_more(&s->idx, h, i)) {
        const struct seen_rec *r = &s->v[s->idx.slot[i].val];
        if (memcmp(r->key, key, SEEN_KEY) == 0)
            return r;
    }
    return NULL;
}

/* Records key as taken by d on line lineno. 0 or -ENOMEM. */
static int seen_add(struct seen *s, const uint8_t key[SEEN_KEY], const struct gw_device *d,
                    int lineno)
{
    if (gw_grow(&s->v, &s->cap, s->n + 1, sizeof(*s->v), 512) != 0)
        return -ENOMEM;
    struct seen_rec *r = &s->v[s->n];
    memcpy(r->key, key, SEEN_KEY);
    memcpy(r->mac, d->mac, GW_MAC_LEN);
    r->line = lineno;
    int rc = gw_map_add(&s->idx, gw_hash64(key, SEEN_KEY, GW_HASH_SEED), s->n);
    if (rc)
        return rc == GW_EFULL ? -ENOMEM : rc;
    s->n++;
    return 0;
}

/* The record of d's MAC or of either endpoint of d (the port in *port), or NULL. */
static const struct seen_rec *seen_find(const struct seen *s, const struct gw_device *d,
                                        uint16_t *port)
{
    uint8_t key[SEEN_KEY];
    seen_key_mac(d, key);
    const struct seen_rec *r = seen_get(s, key);
    if (r) {
        *port = 0;
        return r;
    }
    uint16_t ports[2] = { d->plain_port, d->secure_port };
    for (int i = 0; i < 2; i++) {
        seen_key_ep(d, ports[i], key);
        if ((r = seen_get(s, key)) != NULL) {
            *port = ports[i];
            return r;
        }
    }
    return NULL;
}

/* Records d's MAC and endpoints (after seen_find found none taken). */
static int seen_add_device(struct seen *s, const struct gw_device *d, int lineno)
{
    uint8_t key[SEEN_KEY];
    seen_key_mac(d, key);
    int rc = seen_add(s, key, d, lineno);
    uint16_t ports[2] = { d->plain_port, d->secure_port };
    for (int i = 0; rc == 0 && i < (d->secure_port == d->plain_port ? 1 : 2); i++) {
        seen_key_ep(d, ports[i], key);
        rc = seen_add(s, key, d, lineno);
    }
    return rc;
}

static void warnf(gw_devfile_warn_fn warn, void *ctx, int lineno, const char *fmt, ...)
    GW_PRINTF(4, 5);
static void warnf(gw_devfile_warn_fn warn, void *ctx, int lineno, const char *fmt, ...)
{
    if (!warn)
        return;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    warn(ctx, lineno, msg);
}

/* A line that cannot be read at all (what: "NUL byte", ...). Where the
 * header should be, it ends the load: returns true. After the header the
 * line is reported, counted in *bad and skipped: returns false. */
static bool unreadable_line(gw_devfile_warn_fn warn, void *ctx, int lineno, int columns,
                            const char *what, const char *tail, int *bad)
{
    if (!columns) {
        warnf(warn, ctx, lineno, "%s where the header should be", what);
        return true;
    }
    warnf(warn, ctx, lineno, "%s%s", what, tail);
    (*bad)++;
    return false;
}

/* Checks the header fields; returns the number of columns it names, or 0. */
static int header_columns(char *const f[], int nf)
{
    if (nf < 4 || nf > MAX_FIELDS)
        return 0;
    for (int i = 0; i < nf; i++)
        if (strcasecmp(f[i], column_names[i]) != 0)
            return 0;
    return nf;
}

int gw_devfile_load(const char *path, gw_devfile_dev_fn cb, gw_devfile_warn_fn warn, void *ctx)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -errno;
    struct seen seen = { 0 };
    if (gw_map_init(&seen.idx, 256, GW_MAP_MAX) != 0) {
        fclose(fp);
        return -ENOMEM;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    int lineno = 0, bad = 0, columns = 0, rc = 0;
    while ((got = getline(&line, &lcap, fp)) >= 0) {
        lineno++;
        char *s = line;
        if (lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
            s += 3; /* UTF-8 byte order mark, as some editors write it */
        if (strlen(line) != (size_t)got) {
            if (unreadable_line(warn, ctx, lineno, columns, "NUL byte", " in line", &bad)) {
                rc = GW_EBADMSG;
                break;
            }
            continue;
        }
        size_t l = chomp(s);
        char *p = s;
        while (is_blank(*p))
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (l > GW_DEVFILE_LINE_MAX) {
            if (unreadable_line(warn, ctx, lineno, columns, "line too long", "", &bad)) {
                rc = GW_EBADMSG;
                break;
            }
            continue;
        }
        char *f[MAX_FIELDS];
        int nf = split_fields(s, f);
        if (!columns) {
            columns = header_columns(f, nf);
            if (!columns) {
                warnf(warn, ctx, lineno,
                      "missing header (need mac,address,type,key[,plain_port,secure_port[,sim]])");
                rc = GW_EBADMSG;
                break;
            }
            continue;
        }
        struct gw_device d;
        const char *why = NULL;
        if (nf > columns && nf <= MAX_FIELDS) {
            warnf(warn, ctx, lineno, "%d fields but the header names %d", nf, columns);
            bad++;
            continue;
        }
        if (parse_fields(f, nf, &d, &why) != 0) {
            warnf(warn, ctx, lineno, "%s", why);
            bad++;
            continue;
        }
        uint16_t hport;
        const struct seen_rec *taken = seen_find(&seen, &d, &hport);
        if (taken && taken->key[0] == SEEN_MAC) {
            char m[17];
            gw_mac_str(d.mac, m);
            warnf(warn, ctx, lineno, "duplicate mac %s (first on line %d)", m, taken->line);
            bad++;
            continue;
        }
        if (taken) {
            char m[17], a[GW_EP_STRLEN];
            struct gw_ep ep = { .family = d.family, .port = hport };
            memcpy(ep.addr, d.addr, 16);
            gw_mac_str(taken->mac, m);
            warnf(warn, ctx, lineno, "%s already used by %s (line %d)",
                  gw_ep_str(&ep, a, sizeof(a)), m, taken->line);
            bad++;
            continue;
        }
        rc = seen_add_device(&seen, &d, lineno);
        if (rc)
            break;
        int stop = cb ? cb(ctx, &d) : 0;
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    if (!rc && got < 0 && ferror(fp))
        rc = -EIO;
    if (!rc && !columns) {
        warnf(warn, ctx, lineno + 1, "missing header (file has no device lines)");
        rc = GW_EBADMSG;
    }
    free(line);
    gw_map_deinit(&seen.idx);
    free(seen.v);
    fclose(fp);
    return rc ? rc : bad;
}

/* Fills buf completely from getrandom(2); the bound covers signal interruptions. */
static int random_fill(uint8_t *buf, size_t n)
{
    size_t off = 0;
    for (int tries = 0; off < n && tries < 64; tries++) {
        ssize_t r = getrandom(buf + off, n - off, 0);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r > 0)
            off += (size_t)r;
    }
    return off == n ? 0 : -EIO;
}

/* Adds k to a big-endian number of n bytes; returns false on overflow. */
static bool addr_add(uint8_t *a, size_t n, uint64_t k)
{
    for (size_t i = n; i-- > 0 && k;) {
        uint64_t s = a[i] + (k & 0xff);
        a[i] = (uint8_t)s;
        k = (k >> 8) + (s >> 8);
    }
    return k == 0;
}

int gw_devfile_generate(const char *path, int n, const char *base, char *err, size_t errlen)
{
    if (n < 1 || n > GW_DEVFILE_GEN_MAX) {
        gw_errf(err, errlen, "device count %d outside 1..%d", n, GW_DEVFILE_GEN_MAX);
        return GW_ECONFIG;
    }
    uint8_t a0[16] = { 0 };
    int af;
    size_t alen;
    if (inet_pton(AF_INET, base, a0) == 1) {
        af = AF_INET;
        alen = 4;
    } else if (inet_pton(AF_INET6, base, a0) == 1) {
        af = AF_INET6;
        alen = 16;
    } else {
        gw_errf(err, errlen, "base address '%s' is not an IPv4 or IPv6 literal", base);
        return GW_ECONFIG;
    }
    uint8_t last[16];
    memcpy(last, a0, sizeof(last));
    if (!addr_add(last, alen, (uint64_t)n - 1)) {
        gw_errf(err, errlen, "%d addresses from %s run past the end of the address space", n, base);
        return GW_ECONFIG;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
        gw_errf(err, errlen, "path too long: %s", path);
        return -ENAMETOOLONG;
    }
    /* The file holds device keys: 0600, created exclusively, never through
     * a planted link (S9.2); renamed into place below. */
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!fp) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        gw_errf(err, errlen, "creating %s: %s", tmp, strerror(e));
        return -e;
    }
    int rc = 0;
    fprintf(fp, "# generated by coapgw meshsim: %d devices from %s\n", n, base);
    fprintf(fp, "mac,address,type,key,plain_port,secure_port\n");
    uint8_t a[16];
    memcpy(a, a0, sizeof(a));
    for (int i = 1; i <= n && !rc; i++) {
        uint8_t key[GW_DEV_KEY_LEN], mac[GW_MAC_LEN];
        rc = random_fill(key, sizeof(key));
        if (rc) {
            gw_errf(err, errlen, "getrandom: %s", strerror(-rc));
            break;
        }
        uint64_t m = 0x0200000000000000ull + (uint64_t)i;
        for (int b = 0; b < GW_MAC_LEN; b++)
            mac[b] = (uint8_t)(m >> (8 * (GW_MAC_LEN - 1 - b)));
        char ms[17], as[INET6_ADDRSTRLEN], ks[2 * GW_DEV_KEY_LEN + 1];
        gw_mac_str(mac, ms);
        inet_ntop(af, a, as, sizeof(as));
        for (size_t b = 0; b < sizeof(key); b++)
            snprintf(ks + 2 * b, 3, "%02x", key[b]);
        fprintf(fp, "%s,%s,%s,%s,%u,%u\n", ms, as, i % 4 == 0 ? "milli" : "normal", ks,
                GW_DEV_PLAIN_PORT, GW_DEV_SECURE_PORT);
        if (i < n && !addr_add(a, alen, 1))
            rc = GW_ECONFIG; /* cannot happen: checked above */
    }
    if (fflush(fp) != 0 || ferror(fp)) {
        int e = errno ? errno : EIO;
        if (!rc) {
            gw_errf(err, errlen, "write %s: %s", tmp, strerror(e));
            rc = -e;
        }
    }
    if (fclose(fp) != 0 && !rc) {
        int e = errno;
        gw_errf(err, errlen, "close %s: %s", tmp, strerror(e));
        rc = -e;
    }
    if (!rc && rename(tmp, path) != 0) {
        int e = errno;
        gw_errf(err, errlen, "rename %s to %s: %s", tmp, path, strerror(e));
        rc = -e;
    }
    if (rc)
        unlink(tmp);
    return rc;
}

int gw_devlist_add(void *list, const struct gw_device *d)
{
    struct gw_devlist *l = list;
    if (l->n == l->cap) {
        uint32_t nc = l->cap ? 2 * l->cap : 64;
        struct gw_device *nv = nc > l->cap ? calloc(nc, sizeof(*nv)) : NULL; /* no wrap */
        if (!nv) {
            l->err = -ENOMEM;
            return -ENOMEM;
        }
        /* Copied by hand rather than realloc'd: realloc would free the old
         * block with the keys still in it. */
        uint32_t n = l->n;
        if (l->v) /* the first growth has nothing to copy or wipe */
            memcpy(nv, l->v, sizeof(*nv) * n);
        gw_devlist_free(l);
        l->v = nv;
        l->n = n;
        l->cap = nc;
    }
    l->v[l->n++] = *d;
    return 0;
}

void gw_devlist_free(struct gw_devlist *l)
{
    if (l->v) {
        explicit_bzero(l->v, sizeof(*l->v) * l->cap);
        free(l->v);
    }
    l->v = NULL;
    l->n = l->cap = 0;
}
