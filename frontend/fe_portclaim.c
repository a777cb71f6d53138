/* SPDX-License-Identifier: MIT */
/* fe_portclaim.c - one instance per client port: abstract unix socket names
 * as claims, /proc/net/unix as the register (see fe_portclaim.h). */
#include "fe_portclaim.h"
#include "gw_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static bool ep_wildcard(const struct gw_ep *ep)
{
    static const uint8_t zero[16];
    return !memcmp(ep->addr, zero, ep->family == 6 ? 16 : 4);
}

void fe_claim_make(const struct gw_ep *listen, const char *instance, int index, struct fe_claim *c)
{
    memset(c, 0, sizeof(*c));
    c->port = listen->port;
    c->family = listen->family;
    c->index = index;
    snprintf(c->instance, sizeof(c->instance), "%s", instance);
    if (ep_wildcard(listen))
        snprintf(c->addr, sizeof(c->addr), "*");
    else if (listen->family == 4)
        inet_ntop(AF_INET, listen->addr, c->addr, sizeof(c->addr));
    else
        for (int i = 0; i < 16; i++)
            snprintf(c->addr + 2 * i, 3, "%02x", listen->addr[i]);
}

size_t fe_claim_name(const struct fe_claim *c, char *buf, size_t len)
{
    char head[80];
    int n = snprintf(head, sizeof(head), "cgw/%u/%s%s/%d/", (unsigned)c->port,
                     c->family == 6 ? "6" : "4", c->addr, c->index);
    size_t room = FE_CLAIM_NAME_MAX - (size_t)n;
    int m = snprintf(buf, len, "%s%.*s", head, (int)room, c->instance);
    return m < 0 ? 0 : (size_t)m >= len ? len - 1 : (size_t)m;
}

int fe_claim_parse(const char *name, struct fe_claim *c)
{
    memset(c, 0, sizeof(*c));
    if (strncmp(name, "cgw/", 4) != 0)
        return GW_EBADMSG;
    const char *p = name + 4;
    char *end;
    unsigned long port = strtoul(p, &end, 10);
    if (end == p || *end != '/' || port == 0 || port > 65535)
        return GW_EBADMSG;
    c->port = (uint16_t)port;
    p = end + 1;
    if (*p != '4' && *p != '6')
        return GW_EBADMSG;
    c->family = (uint8_t)(*p - '0');
    p++;
    const char *slash = strchr(p, '/');
    if (!slash || slash == p || (size_t)(slash - p) >= sizeof(c->addr))
        return GW_EBADMSG;
    memcpy(c->addr, p, (size_t)(slash - p));
    p = slash + 1;
    long idx = strtol(p, &end, 10);
    if (end == p || *end != '/' || idx < 0 || idx > 63)
        return GW_EBADMSG;
    c->index = (int)idx;
    p = end + 1;
    if (!*p || strlen(p) >= sizeof(c->instance))
        return GW_EBADMSG;
    memcpy(c->instance, p, strlen(p) + 1);
    return 0;
}

bool fe_claim_conflicts(const struct fe_claim *mine, const struct fe_claim *other)
{
    if (mine->port != other->port || !strcmp(mine->instance, other->instance))
        return false;
    bool mw = !strcmp(mine->addr, "*"), ow = !strcmp(other->addr, "*");
    /* An IPv6 wildcard socket also receives IPv4 (dual stack, the default). */
    if ((mw && mine->family == 6) || (ow && other->family == 6))
        return true;
    if (mine->family != other->family)
        return false;
    return mw || ow || !strcmp(mine->addr, other->addr);
}

int fe_claim_scan(FILE *f, const struct fe_claim *mine, struct fe_claim *other)
{
    char line[512];
    /* Bounded: /proc/net/unix has one line per socket of the namespace. */
    for (int i = 0; i < 1000000 && fgets(line, sizeof(line), f); i++) {
        char *at = strstr(line, " @cgw/");
        if (!at)
            continue;
        char *name = at + 2;
        name[strcspn(name, " \r\n")] = '\0';
        struct fe_claim c;
        if (fe_claim_parse(name, &c) == 0 && fe_claim_conflicts(mine, &c)) {
            *other = c;
            return 1;
        }
    }
    return 0;
}

int fe_claim_port(const struct fe_claim *c, char *err, size_t errlen)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket(AF_UNIX): %s", strerror(e));
        return -e;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = fe_claim_name(c, sa.sun_path + 1, sizeof(sa.sun_path) - 1);
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    if (bind(fd, (struct sockaddr *)&sa, sl) != 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE) {
            snprintf(err, errlen, "port %u: frontend %d of instance %s already serves it",
                     (unsigned)c->port, c->index, c->instance);
            return GW_EFORBIDDEN;
        }
        snprintf(err, errlen, "bind(@%s): %s", sa.sun_path + 1, strerror(e));
        return -e;
    }
    FILE *f = fopen("/proc/net/unix", "re");
    if (!f) {
        int e = errno;
        close(fd);
        snprintf(err, errlen,
                 "/proc/net/unix: %s (needed to check that no other instance uses the port)",
                 strerror(e));
        return -e;
    }
    struct fe_claim other;
    int hit = fe_claim_scan(f, c, &other);
    fclose(f);
    if (hit) {
        close(fd);
        snprintf(
            err, errlen,
            "port %u is used by instance %s (its frontend %d on %s); refusing to share it "
            "(SO_REUSEPORT would split the clients between the two): give this gateway another `listen` "
            "or stop the other",
            (unsigned)c->port, other.instance, other.index,
            !strcmp(other.addr, "*") ? "every address" : other.addr);
        return GW_EFORBIDDEN;
    }
    return fd;
}
