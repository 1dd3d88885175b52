/*
 * pending: callers waiting for one lookup. See pending.h.
 */
#include "pending.h"

#include <stdlib.h>

#include "util.h"

struct pending_wait {
        struct pending_wait *next;
        struct pending *p; /* NULL while its list is being delivered */
        pending_cb cb;     /* NULL: cancelled during delivery */
        void *arg;
};

struct pending_wait *pending_add(struct pending *p, pending_cb cb, void *arg)
{
        struct pending_wait *w = xcalloc(1, sizeof(*w)), **pp = &p->head;

        while (*pp != NULL)
                pp = &(*pp)->next;
        w->p = p;
        w->cb = cb;
        w->arg = arg;
        *pp = w;
        return w;
}

void pending_cancel(struct pending_wait *w)
{
        struct pending_wait **pp;

        if (w == NULL)
                return;
        if (w->p == NULL) {
                w->cb = NULL; /* in a list being delivered: skipped, freed there */
                return;
        }
        for (pp = &w->p->head; *pp != NULL; pp = &(*pp)->next) {
                if (*pp == w) {
                        *pp = w->next;
                        break;
                }
        }
        free(w);
}

void pending_deliver(struct pending *p)
{
        struct pending_wait *list = p->head, *w;

        p->head = NULL;
        for (w = list; w != NULL; w = w->next)
                w->p = NULL;
        while ((w = list) != NULL) {
                pending_cb cb = w->cb;
                void *arg = w->arg;

                list = w->next;
                free(w);
                if (cb != NULL)
                        cb(arg);
        }
}

void pending_clear(struct pending *p)
{
        struct pending_wait *w, *next;

        for (w = p->head; w != NULL; w = next) {
                next = w->next;
                free(w);
        }
        p->head = NULL;
}

bool pending_empty(const struct pending *p)
{
        return p->head == NULL;
}
