/*
 * buf: a growable byte buffer with a read offset, for bytes in flight between
 * a socket, TLS and the SMTP codec.
 *
 * The struct is embedded in its owner; its members are private. Readable bytes
 * are buf_data()[0 .. buf_len()). Appending grows the storage (out of memory
 * aborts); consuming advances the read offset. buf_shrink() gives the storage
 * back when the buffer is empty, so an idle session holds no buffer memory.
 * Bounds are the caller's business: check buf_len() before appending.
 */
#ifndef MAILWARD_BUF_H
#define MAILWARD_BUF_H

#include <stddef.h>

struct buf {
        char *data;
        size_t off;
        size_t len;
        size_t cap;
};

void buf_init(struct buf *b);
void buf_cleanup(struct buf *b);

/*
 * Not inline: GCC at -O2 would see the "" of a buffer without storage and
 * warn (-Warray-bounds) about every caller that reads past a length check it
 * cannot tie to buf_len().
 */
const char *buf_data(const struct buf *b);

static inline size_t buf_len(const struct buf *b)
{
        return b->len;
}

void buf_append(struct buf *b, const void *p, size_t n);
void buf_appendf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append n bytes of uninitialised space and return a pointer to it. */
char *buf_reserve(struct buf *b, size_t n);
/* Give back the tail of a reservation that was not used. */
void buf_unreserve(struct buf *b, size_t n);
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Free the storage if the buffer is empty. */
void buf_shrink(struct buf *b);

#endif
