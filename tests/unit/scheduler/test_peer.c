/* SPDX-License-Identifier: MIT */
/* test_peer.c - devices owned by another node (S10.4, sch_int.h, meshio/mesh_peer.h):
 * served like local ones, with MIDs from one even counter per owner node, and
 * the owner's datagrams (GW_MF_PEER, no device) attributed to their exchange
 * or observation, also after a scheduler restart. */
#include "gw_nodes.h"
#include "sch_harness.h"

static uint32_t OWNER, SELF;
static uint64_t REM1, REM2; /* two devices owned by node OWNER */
static uint64_t LOCAL;      /* one of ours */

/* Devices of this harness's kind (0x0011223344556600 + i) owned by `node`. */
static uint64_t owned_by(uint32_t node, unsigned skip)
{
    for (uint64_t i = 1; i < 255; i++) {
        uint8_t mac[GW_MAC_LEN];
        h_mac(0x0011223344556600ull + i, mac);
        if (gw_nodes_owner(mac, 2) == node && skip-- == 0)
            return 0x0011223344556600ull + i;
    }
    cr_assert_fail("no device owned by node %u", node);
    return 0;
}

static void setup(void)
{
    h_init();
    uint8_t mac[GW_MAC_LEN];
    h_mac(DEV_A, mac);
    OWNER = gw_nodes_owner(mac, 2);
    SELF = 1 - OWNER;
    H.cfg.node_count = 2;
    H.cfg.node_id = SELF;
    REM1 = owned_by(OWNER, 0);
    REM2 = owned_by(OWNER, 1);
    h_mac(REM1, H.dev[H.ndev].mac), H.dev[H.ndev++].type = 0;
    h_mac(REM2, H.dev[H.ndev].mac), H.dev[H.ndev++].type = 1; /* a Milli */
    LOCAL = owned_by(SELF, 0);
    h_mac(LOCAL, H.dev[H.ndev].mac), H.dev[H.ndev++].type = 0;
    h_open_store();
    h_start();
}

static void teardown(void)
{
    h_fini();
}

TestSuite(peer, .init = setup, .fini = teardown);

/* A datagram from peer node `node` as meshio pushes it: no device. */
static void peer_send(uint32_t node, const struct h_resp *r)
{
    uint8_t buf[GW_COAP_MAX_MSG + 16];
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), r->type, r->code, r->mid, r->token, r->token ? 8 : 0);
    if (r->has_obs)
        gw_cb_opt_uint(&b, GW_OPT_OBSERVE, r->obs);
    if (r->payload)
        gw_cb_payload(&b, r->payload, strlen(r->payload));
    size_t len;
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    struct gw_msg m;
    gw_msg_mesh_rx(&m, r->security, (const uint8_t[GW_MAC_LEN]){ 0 }, len);
    m.flags = GW_MF_PEER;
    m.aux = node;
    sch_core_on_record(H.core, &m, buf);
}

/* The owner deduplicates by our endpoint and MID across all our remote
 * devices: their MIDs never coincide, and are even (meshio's POSTs are odd). */
Test(peer, remote_devices_share_one_even_mid_sequence_per_owner)
{
    h_request(&(struct h_req){ .mac = REM1, .tok = "a" });
    h_request(&(struct h_req){ .mac = REM2, .tok = "b" });
    h_request(&(struct h_req){ .mac = LOCAL, .tok = "c" });
    cr_assert_eq(H.nmesh, 3);
    struct h_pkt p1, p2;
    h_mesh_pkt(0, &p1);
    h_mesh_pkt(1, &p2);
    cr_assert_eq(p1.mid % 2, 0);
    cr_assert_eq(p2.mid % 2, 0);
    cr_assert_neq(p1.mid, p2.mid);
    cr_assert_eq((uint16_t)(p2.mid - p1.mid), 2, "one counter for the owner");
}

/* S4.4 across nodes: the owner's empty ACK stops retransmission; its
 * separate CON response, found by the device token, answers the client and
 * is ACKed back (to the device's MAC: meshio sends it to the owner). */
Test(peer, empty_ack_then_separate_response_is_attributed)
{
    h_request(&(struct h_req){ .mac = REM1, .tok = "t1" });
    struct h_pkt req;
    h_last_tx(&req);
    peer_send(OWNER, &(struct h_resp){ .type = GW_COAP_ACK, .mid = req.mid });
    h_advance(60000); /* no retransmission after the ACK (ACK_TIMEOUT is 20 s) */
    cr_assert_eq(H.nmesh, 1);
    cr_assert_eq(H.nclient, 0);
    peer_send(OWNER, &(struct h_resp){ .type = GW_COAP_CON,
                                       .code = GW_COAP_CONTENT,
                                       .mid = 0x7777,
                                       .token = req.token,
                                       .payload = "21.5" });
    cr_assert_eq(H.nclient, 1);
    h_assert_client_token(0, "t1");
    struct h_pkt ans, ack;
    h_client_pkt(0, &ans);
    cr_assert_eq(ans.code, GW_COAP_CONTENT);
    cr_assert_str_eq(ans.payload, "21.5");
    cr_assert_eq(H.nmesh, 2);
    h_mesh_pkt(1, &ack);
    cr_assert_eq(ack.type, GW_COAP_ACK);
    cr_assert_eq(ack.mid, 0x7777);
    uint8_t mac[GW_MAC_LEN];
    h_mac(REM1, mac);
    cr_assert_eq(memcmp(H.mesh[1].env.mac, mac, GW_MAC_LEN), 0);
}

/* Attribution is by (owner node, MID): the same MID from the other node, or
 * from no node at all, answers nothing; a CON nobody wants gets RST back to
 * the node that sent it. */
Test(peer, wrong_node_answers_nothing_and_unknown_con_gets_rst)
{
    h_request(&(struct h_req){ .mac = REM1, .tok = "t1" });
    struct h_pkt req;
    h_last_tx(&req);
    peer_send(SELF, &(struct h_resp){ .type = GW_COAP_ACK,
                                      .code = GW_COAP_CONTENT,
                                      .mid = req.mid,
                                      .token = req.token });
    cr_assert_eq(H.nclient, 0);
    static const uint8_t stray[8] = { 0xde, 0xad, 0, 0, 0, 0, 0, 1 };
    peer_send(OWNER,
              &(struct h_resp){
                  .type = GW_COAP_CON, .code = GW_COAP_CONTENT, .mid = 0x55, .token = stray });
    cr_assert_eq(H.nclient, 0);
    cr_assert_eq(H.nmesh, 2);
    struct h_pkt rst;
    h_mesh_pkt(1, &rst);
    cr_assert_eq(rst.type, GW_COAP_RST);
    cr_assert_eq(rst.mid, 0x55);
    cr_assert(H.mesh[1].env.flags & GW_MF_PEER);
    cr_assert_eq(H.mesh[1].env.aux, OWNER);
}

/* S1.3: transactions live in shared memory; a restarted scheduler rebuilds
 * the peer indexes, so the owner's late answer still finds its client. */
Test(peer, attribution_survives_a_scheduler_restart)
{
    h_request(&(struct h_req){ .mac = REM2, .tok = "milli" });
    struct h_pkt req;
    h_last_tx(&req);
    h_restart();
    peer_send(OWNER, &(struct h_resp){ .type = GW_COAP_ACK,
                                       .code = GW_COAP_CONTENT,
                                       .mid = req.mid,
                                       .token = req.token,
                                       .payload = "ok" });
    cr_assert_eq(H.nclient, 1);
    h_assert_client_token(0, "milli");
    /* And the successor's next MID for that owner does not repeat it. */
    h_request(&(struct h_req){ .mac = REM1, .tok = "next" });
    struct h_pkt nx;
    h_last_tx(&nx);
    cr_assert_neq(nx.mid, req.mid);
    cr_assert_eq(nx.mid % 2, 0);
}

/* S6.1 across nodes: the owner's notifications carry our observation's
 * device token; they are attributed through the observation and fanned out. */
Test(peer, notification_from_owner_reaches_the_observers)
{
    h_request(&(struct h_req){ .mac = REM1, .tok = "o1", .flags = GW_MF_OBS_REGISTER });
    struct h_pkt reg;
    h_last_tx(&reg);
    peer_send(OWNER, &(struct h_resp){ .type = GW_COAP_ACK,
                                       .code = GW_COAP_CONTENT,
                                       .mid = reg.mid,
                                       .token = reg.token,
                                       .has_obs = true,
                                       .obs = 5,
                                       .payload = "1" });
    cr_assert_eq(H.nclient, 1);
    unsigned nm = H.nmesh;
    peer_send(OWNER, &(struct h_resp){ .type = GW_COAP_CON,
                                       .code = GW_COAP_CONTENT,
                                       .mid = 0x4242,
                                       .token = reg.token,
                                       .has_obs = true,
                                       .obs = 6,
                                       .payload = "2" });
    cr_assert_eq(H.nclient, 2);
    h_assert_client_token(1, "o1");
    struct h_pkt n, ack;
    h_client_pkt(1, &n);
    cr_assert_str_eq(n.payload, "2");
    cr_assert_geq(n.observe, 0);
    cr_assert_eq(H.nmesh, nm + 1);
    h_mesh_pkt(nm, &ack);
    cr_assert_eq(ack.type, GW_COAP_ACK);
    cr_assert_eq(ack.mid, 0x4242);
}
