/*
 * lru: the order of last use, threaded through the entries of a cache
 * (lib/sts.c, lib/dane.c). An entry embeds a struct lru_link; LRU_ENTRY()
 * gives the entry back from it. Constant time, no allocation.
 */
#ifndef MAILWARD_LRU_H
#define MAILWARD_LRU_H

#include <stddef.h>

struct lru_link {
        struct lru_link *newer, *older; /* NULL at the ends, or when not linked */
};

struct lru_list {
        struct lru_link *newest, *oldest;
};

#define LRU_ENTRY(link, type, member)                                                    \
        ((type *)(void *)((char *)(link)-offsetof(type, member)))

/* Take e out of l (it must be in it). */
static inline void lru_unlink(struct lru_list *l, struct lru_link *e)
{
        if (e->older != NULL)
                e->older->newer = e->newer;
        else
                l->oldest = e->newer;
        if (e->newer != NULL)
                e->newer->older = e->older;
        else
                l->newest = e->older;
        e->newer = e->older = NULL;
}

/* e, in l or new to it (zeroed), becomes its most recently used. */
static inline void lru_touch(struct lru_list *l, struct lru_link *e)
{
        if (l->newest == e)
                return;
        if (e->older != NULL || e->newer != NULL || l->oldest == e)
                lru_unlink(l, e);
        e->older = l->newest;
        if (l->newest != NULL)
                l->newest->newer = e;
        l->newest = e;
        if (l->oldest == NULL)
                l->oldest = e;
}

#endif
