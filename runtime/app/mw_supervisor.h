/* mw_supervisor: the `serve` process. Opens the listening socket(s) before forking so that
 * connections wait in the backlog while a worker is replaced; forks, reaps and replaces
 * workers; forwards SIGTERM/SIGINT (drain) and SIGHUP (reload). Serves no clients itself. */
#ifndef MW_SUPERVISOR_H
#define MW_SUPERVISOR_H

#include "mw_config.h"

/* Runs until shutdown; returns the process exit status. */
int mw_supervisor_run(mw_config *cfg);

#endif
