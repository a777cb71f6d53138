/* SPDX-License-Identifier: MIT */
/* test_nodes.c - node keys and device ownership (common/gw_nodes.c, issue 16 item 3, S10.4).
 *
 * Ownership must be the same on every node (a pure function of the MAC and
 * the node count), spread devices evenly, and move few devices when a node
 * is added: only to the new node, never between old ones. The keys must
 * agree or the configuration is refused with one line naming the key. */
#include "gw_config.h"
#include "gw_error.h"
#include "gw_nodes.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NDEV 20000

static void mac_of(uint32_t i, uint8_t mac[GW_MAC_LEN])
{
    /* Sequential MACs, the worst case for a weak hash. */
    memset(mac, 0, GW_MAC_LEN);
    mac[0] = 0x02;
    mac[4] = (uint8_t)(i >> 24), mac[5] = (uint8_t)(i >> 16), mac[6] = (uint8_t)(i >> 8),
    mac[7] = (uint8_t)i;
}

Test(nodes, single_node_owns_everything)
{
    uint8_t mac[GW_MAC_LEN];
    for (uint32_t i = 0; i < 1000; i++) {
        mac_of(i, mac);
        cr_assert_eq(gw_nodes_owner(mac, 1), 0);
    }
}

Test(nodes, deterministic_and_pinned)
{
    uint8_t mac[GW_MAC_LEN];
    for (uint32_t i = 0; i < 1000; i++) {
        mac_of(i, mac);
        cr_assert_eq(gw_nodes_owner(mac, 5), gw_nodes_owner(mac, 5));
        cr_assert_eq(gw_nodes_weight(mac, 3), gw_nodes_weight(mac, 3));
    }
    /* Pinned values: a change of the function would move devices between
     * nodes of a running cluster during a rolling upgrade. */
    uint8_t a[GW_MAC_LEN] = { 0x00, 0x12, 0x4b, 0x00, 0x00, 0x00, 0x00, 0x01 };
    uint8_t b[GW_MAC_LEN] = { 0x00, 0x12, 0x4b, 0x00, 0x00, 0x00, 0x00, 0x02 };
    uint32_t oa = gw_nodes_owner(a, 3), ob = gw_nodes_owner(b, 3);
    cr_assert_lt(oa, 3);
    cr_assert_lt(ob, 3);
    cr_assert_eq(oa, 0);
    cr_assert_eq(ob, 0);
    cr_assert_eq(gw_nodes_weight(a, 0), 0xf820c23909ca0e08ull);
    cr_assert_eq(gw_nodes_weight(b, 2), 0x0c1f37ac73f5cca2ull);
}

Test(nodes, balanced)
{
    uint8_t mac[GW_MAC_LEN];
    for (uint32_t n = 2; n <= 8; n++) {
        uint32_t per[8] = { 0 };
        for (uint32_t i = 0; i < NDEV; i++) {
            mac_of(i, mac);
            uint32_t o = gw_nodes_owner(mac, n);
            cr_assert_lt(o, n);
            per[o]++;
        }
        for (uint32_t k = 0; k < n; k++) {
            double share = (double)per[k] / NDEV, want = 1.0 / n;
            cr_assert(share > want * 0.9 && share < want * 1.1,
                      "N=%u node %u owns %.3f, want %.3f +- 10%%", n, k, share, want);
        }
    }
}

Test(nodes, minimal_movement_n_to_n_plus_1)
{
    uint8_t mac[GW_MAC_LEN];
    for (uint32_t n = 1; n <= 7; n++) {
        uint32_t moved = 0;
        for (uint32_t i = 0; i < NDEV; i++) {
            mac_of(i, mac);
            uint32_t before = gw_nodes_owner(mac, n), after = gw_nodes_owner(mac, n + 1);
            if (before != after) {
                cr_assert_eq(after, n, "a device moved between old nodes %u -> %u", before, after);
                moved++;
            }
        }
        double share = (double)moved / NDEV, want = 1.0 / (n + 1);
        cr_assert(share > want * 0.9 && share < want * 1.1, "N=%u->%u moved %.3f, want about %.3f",
                  n, n + 1, share, want);
    }
}

static struct gw_config cfg;
static char err[512];

static int with(const char *id, const char *count, const char *nodes, const char *listen)
{
    gw_config_defaults(&cfg);
    err[0] = '\0';
    cr_assert_eq(gw_config_set(&cfg, "node_id", id, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_config_set(&cfg, "node_count", count, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_config_set(&cfg, "nodes", nodes, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_config_set(&cfg, "listen", listen, err, sizeof(err)), 0, "%s", err);
    /* Nodes sign their session tokens at each other with a shared HS256 key. */
    cr_assert_eq(gw_config_set(&cfg, "jwt_key_file", "/etc/coapgw/jwt.key", err, sizeof(err)), 0);
    return gw_config_validate(&cfg, err, sizeof(err));
}

/* S10.4: without a shared HS256 key the nodes cannot authenticate to each
 * other: a configuration error naming the key. */
Test(nodes, several_nodes_need_a_shared_hs256_key)
{
    cr_assert_eq(with("0", "2", "a:5683,b:5683", "0.0.0.0:5683"), 0, "%s", err);
    cr_assert_eq(gw_config_set(&cfg, "jwt_key_file", "", err, sizeof(err)), 0);
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), GW_ECONFIG);
    cr_assert(strstr(err, "jwt_key_file"), "'%s'", err);
    cr_assert_eq(gw_config_set(&cfg, "jwt_key_file", "/k.pem", err, sizeof(err)), 0);
    cr_assert_eq(gw_config_set(&cfg, "jwt_alg", "RS256", err, sizeof(err)), 0);
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), GW_ECONFIG);
    cr_assert(strstr(err, "jwt_alg"), "'%s'", err);
}

Test(nodes, default_is_one_node)
{
    gw_config_defaults(&cfg);
    cr_assert_eq(cfg.node_count, 1);
    cr_assert_eq(cfg.node_id, 0);
    cr_assert_str_empty(cfg.nodes);
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
}

Test(nodes, agreeing_keys_parse)
{
    cr_assert_eq(with("1", "3", "gw-0.gw:5683, gw-1.gw:5683 ,[::1]:5684", "0.0.0.0:5683"), 0, "%s",
                 err);
    struct gw_nodes n;
    cr_assert_eq(gw_nodes_parse(&cfg, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n.self, 1);
    cr_assert_eq(n.count, 3);
    cr_assert_str_eq(n.host[0], "gw-0.gw");
    cr_assert_str_eq(n.host[2], "::1");
    cr_assert_eq(n.port[2], 5684);
    cr_assert_eq(with("0", "1", "127.0.0.1:5683", "127.0.0.1:5683"), 0, "%s", err);
}

static void refused(const char *key, const char *id, const char *count, const char *nodes,
                    const char *listen)
{
    cr_assert_eq(with(id, count, nodes, listen), GW_ECONFIG, "accepted id=%s count=%s nodes='%s'",
                 id, count, nodes);
    cr_assert(strstr(err, key), "'%s' does not name %s", err, key);
    cr_assert(!strchr(err, '\n'), "one line: '%s'", err);
}

Test(nodes, disagreeing_keys_refused)
{
    refused("nodes", "0", "2", "", "0.0.0.0:5683");                     /* missing */
    refused("node_id", "2", "2", "a:1,b:1", "0.0.0.0:1");               /* id >= count */
    refused("node_id", "1", "1", "", "0.0.0.0:5683");                   /* id with one node */
    refused("nodes", "0", "3", "a:5683,b:5683", "0.0.0.0:5683");        /* too few */
    refused("nodes", "0", "2", "a:5683,b:5683,c:5683", "0.0.0.0:5683"); /* too many */
    refused("nodes", "0", "2", "a:5683,a:5683", "0.0.0.0:5683");        /* duplicate */
    refused("nodes", "0", "2", "a,b:5683", "0.0.0.0:5683");             /* no port */
    refused("nodes", "0", "2", "a:0,b:5683", "0.0.0.0:5683");           /* port 0 */
    refused("nodes", "0", "2", "a:5683,,b:5683", "0.0.0.0:5683");       /* empty entry */
    refused("nodes", "0", "2", "a b:5683,c:5683", "0.0.0.0:5683");      /* bad host */
    refused("nodes", "1", "2", "a:5683,b:5684", "0.0.0.0:5683");        /* listen port disagrees */
    refused("nodes", "0", "2", "::1:5683,b:5683", "0.0.0.0:5683");      /* IPv6 without [] */
}

Test(nodes, config_file_error_names_file_line)
{
    char dir[] = "/tmp/coapgw-test-nodes-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/c.conf", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "node_count = 2\nnodes = 127.0.0.1:5683\n");
    cr_assert_eq(fclose(f), 0);
    int rc = gw_config_load(&cfg, path, err, sizeof(err));
    unlink(path);
    rmdir(dir);
    cr_assert_eq(rc, GW_ECONFIG);
    cr_assert(strstr(err, "c.conf:2: nodes"), "'%s'", err);
}

Test(nodes, resolve_and_find)
{
    cr_assert_eq(with("0", "2", "localhost:5701,127.0.0.2:5702", "127.0.0.1:5701"), 0, "%s", err);
    struct gw_nodes n;
    cr_assert_eq(gw_nodes_parse(&cfg, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_nodes_find(&n, &n.ep[0]), -1, "unresolved lists match nothing");
    cr_assert_eq(gw_nodes_resolve(&n, err, sizeof(err)), 0, "%s", err);
    struct gw_ep ep;
    cr_assert_eq(gw_ep_parse("127.0.0.2:5702", 0, &ep), 0);
    cr_assert_eq(gw_nodes_find(&n, &ep), 1);
    cr_assert_eq(gw_ep_parse("127.0.0.1:5701", 0, &ep), 0);
    cr_assert_eq(gw_nodes_find(&n, &ep), 0);
    cr_assert_eq(gw_ep_parse("127.0.0.1:5702", 0, &ep), 0);
    cr_assert_eq(gw_nodes_find(&n, &ep), -1, "the port is part of a node's identity");
    strcpy(n.host[1], "no-such-node.invalid");
    cr_assert_eq(gw_nodes_resolve(&n, err, sizeof(err)), GW_ECONFIG);
    cr_assert(strstr(err, "nodes") && strstr(err, "no-such-node.invalid"), "'%s'", err);
}
