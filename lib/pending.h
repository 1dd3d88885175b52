/*
 * pending: callers waiting for one lookup to end (lib/sts.c, lib/dane.c).
 *
 * A struct pending is embedded in whatever is looked up (members private).
 * pending_add() gives each caller a wait; pending_deliver() calls every
 * caller back once, in the order they came, from the loop (never from
 * inside pending_add()). A wait is gone when its callback is called, and a
 * caller that goes away first cancels it with pending_cancel(), also from
 * inside another caller's callback: the list being delivered is detached
 * first, so callbacks may add waits, cancel others, or free the object the
 * struct pending is in.
 */
#ifndef MAILWARD_PENDING_H
#define MAILWARD_PENDING_H

#include <stdbool.h>

struct pending_wait;

struct pending {
        struct pending_wait *head;
};

typedef void (*pending_cb)(void *arg);

struct pending_wait *pending_add(struct pending *p, pending_cb cb, void *arg);
/* w may be NULL. The callback will not come. */
void pending_cancel(struct pending_wait *w);
/* Call every wait's callback once, then the list is empty. */
void pending_deliver(struct pending *p);
/* Forget every wait without calling it (shutting down). */
void pending_clear(struct pending *p);
bool pending_empty(const struct pending *p);

#endif
