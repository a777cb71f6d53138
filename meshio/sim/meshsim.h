/* SPDX-License-Identifier: MIT */
/* meshsim.h - the mesh simulator (SPEC S7.3): many simulated devices, normal
 * and Milli, each with a plain CoAP port and a secured port, so the gateway
 * can be run and tested with no hardware.
 *
 * Usage (argv[0] is "meshsim"; the gateway wires it as `coapgw meshsim ...`):
 *
 *   meshsim --devices FILE | --generate N [--base ADDR] --out FILE [--generate-only]
 *           [--latency MIN-MAX] [--loss PCT] [--milli-delay MS]
 *           [--obs-period-ms MS] [--obs-max-age S] [--ready-file PATH]
 *           [--seed N] [--log-level LEVEL] [--quiet]
 *
 *   --devices FILE      devices file (gw_devfile.h format); bad lines are
 *                       warned about and skipped
 *   --generate N        write N generated devices to --out (addresses
 *                       consecutive from --base, default 127.0.10.1) and
 *                       simulate them; --generate-only writes and exits
 *   --latency MIN-MAX   per-request device delay in ms, uniform (default 1-5)
 *   --loss PCT          each datagram, in and out, is lost with PCT % (0)
 *   --milli-delay MS    service time of one Milli request (300)
 *   --obs-period-ms MS  /sensor changes this often (5000)
 *   --obs-max-age S     Max-Age of /sensor answers and notifications (10)
 *   --ready-file PATH   written with "ready\n" once every socket is bound
 *   --seed N            seeds the simulator's random numbers (default random)
 *   --quiet             warnings and errors only
 *
 * Per-device overrides in the devices file's `sim` column, ';'-separated:
 *   latency=MIN-MAX (or latency=MS), loss=PCT, silent (never answers), rst
 *   (answers RST), ackonly (empty ACK, never the response), separate (empty
 *   ACK, then a CON response that is retransmitted until ACKed), drop_first=N
 *   (ignores the first N transmissions of each new MID), con_notify (CON
 *   notifications), nolarge (no /large), milli_delay=MS, obs_period=MS,
 *   max_age=S (Max-Age on /value answers; absent: none, which means 60 s).
 *
 * Every device binds address:plain_port (plain CoAP) and address:secure_port
 * (frames of mesh_crypto.h: opened with the device key and MESH_DIR_TO_DEVICE,
 * replies sealed with MESH_DIR_FROM_DEVICE and the device's own sequence
 * number, which starts at unix-ms << 6 so it keeps increasing across
 * restarts). Sockets set SO_REUSEPORT so that a gateway bound to the wildcard
 * address on the same port (S1.4, S1.5) can run beside them; a second
 * simulator on the same address:port is refused all the same (each one claims
 * its address:port in the abstract unix socket namespace first).
 *
 * Device behaviour (RFC 7252): a CON request gets a piggybacked response, or
 * an empty ACK and a separate CON response when `separate` is set or the drawn
 * latency exceeds 1000 ms; NON gets NON; a duplicate (source, MID) within 247 s
 * gets the stored answer again and is never reprocessed; an empty CON gets RST;
 * an unknown critical option gets 4.02 (Block1/Block2 included: mesh devices do
 * not do block-wise, S4.7). Normal devices serve requests concurrently; a
 * Milli serves one at a time, queueing the others in order, and never
 * retransmits.
 *
 * Resources: /.well-known/core; /value (GET 2.05 with ETag, PUT/POST 2.04,
 * DELETE 2.02 back to "0"); /sensor (observable, RFC 7641: changes every
 * obs-period, 3-byte Observe numbers, ETag, Max-Age, 2.03 for a matching
 * ETag); /large (~1000 bytes); /echo (POST/PUT, 2.04 with the payload).
 * Test hooks, answered at once and never counted: GET /_sim/counters (JSON),
 * POST /_sim/reboot (forget observers, restart Observe numbers small),
 * POST /_sim/reset (zero counters).
 *
 * Signals: SIGTERM/SIGINT stop cleanly, SIGUSR1 logs totals. */
#ifndef MESHSIM_H
#define MESHSIM_H

/* Runs the simulator until SIGTERM/SIGINT. Returns 0 after a clean stop,
 * GW_EXIT_FATAL (78) for bad options, devices or sockets, 1 otherwise. */
int meshsim_main(int argc, char **argv);

#endif
