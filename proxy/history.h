/*
 * history: `mailward -l` and `mailward -f DOMAIN`, the learned TLS history
 * (state_dir/learned.mdb, lib/learned.h) from the command line.
 *
 * -l prints one line per domain, in the store's (byte) order:
 *     DOMAIN learned=2026-12-01T10:00:00Z age_days=7 version=TLSv1.3
 *         cipher=... mx=HOST [stale]
 * (one line; "stale": older than every outbound listener's
 * learned_max_age, so no longer used). -f removes DOMAIN's record (given as
 * a domain or a name in UTF-8, taken as a recipient's would be), so that
 * TLS is no longer expected of it from what was learned: for a domain
 * whose servers stopped offering TLS for good, as its owner says. A policy
 * table entry is the other way, and wins over the record anyway.
 *
 * Safe beside a running mailward: LMDB serialises the writers and every
 * RCPT reads the store afresh, so a record forgotten is forgotten at once.
 * Started as root, the command first becomes `user` (privdrop()), so that
 * a store it creates or touches stays the daemon's.
 */
#ifndef MAILWARD_HISTORY_H
#define MAILWARD_HISTORY_H

#include <stdio.h>

#include "config.h"

/* The exit status: 0, or 1 with the reason on err (forget: no record). */
int history_list(const struct config *cfg, FILE *out, FILE *err);
int history_forget(const struct config *cfg, const char *domain, FILE *out, FILE *err);

#endif
