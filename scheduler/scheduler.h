/* SPDX-License-Identifier: MIT */
/* scheduler.h - the scheduler process (SPEC S1.1, S4, S5, S6). */
#ifndef SCHEDULER_H
#define SCHEDULER_H

#include "gw_config.h"

/* Runs the scheduler until SIGTERM/SIGINT. Returns a process exit code. */
int sch_run(const struct gw_config *cfg);

#endif
