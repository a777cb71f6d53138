/* SPDX-License-Identifier: MIT */
/* frontend.h - the client-facing process (SPEC S1.1, S2, S3, S8).
 *
 * One UDP socket (SO_REUSEPORT, shared by every frontend on the port), the
 * message layer, sessions, local resources, and the ring pair to the
 * scheduler. Everything it must not lose lives elsewhere: sessions in
 * LMDB, requests already handed over in the rings and the scheduler's
 * table. */
#ifndef FRONTEND_H
#define FRONTEND_H

#include "gw_config.h"

/* Runs frontend `index` until SIGTERM/SIGINT. Returns a process exit code. */
int fe_run(const struct gw_config *cfg, int index);

/* Loads the development secret (data_dir/dev-secret), creating it when
 * jwt_key_file is empty; writes the path used into path. */
int fe_dev_key_path(const struct gw_config *cfg, char *path, size_t len);

#endif
