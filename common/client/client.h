/* SPDX-License-Identifier: MIT */
/* client.h - `coapgw client` (issue 14, SPEC S10.5): a command-line CoAP
 * client for the gateway that keeps its session across invocations from one
 * fixed local port, re-opens it on 4.01, follows Block2 and observes.
 *
 * Built on libcoap's client API; the pure parts (targets, configuration,
 * state file, response output) are cl_uri, cl_conf, cl_state and cl_resp. */
#ifndef CL_CLIENT_H
#define CL_CLIENT_H

/* Exit statuses (the documented contract: scripts test them). */
enum {
    CL_EXIT_OK = 0,      /* a 2.xx answer (ping: the RST came back) */
    CL_EXIT_COAP = 1,    /* a 4.xx or 5.xx answer, code and diagnostic on stderr */
    CL_EXIT_USAGE = 2,   /* bad command line, configuration, target or token */
    CL_EXIT_TIMEOUT = 3, /* no answer in time, or the gateway is unreachable */
};

/* Runs one client command. argv[0] is "client" or the program's name
 * (the coapgw-client link). Returns the exit status. */
int cl_main(int argc, char **argv);

#endif
