#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void buf_init(struct buf *b)
{
        memset(b, 0, sizeof(*b));
}

void buf_cleanup(struct buf *b)
{
        free(b->data);
        buf_init(b);
}

const char *buf_data(const struct buf *b)
{
        /* Not NULL + 0 for a buffer that has no storage: that is undefined. */
        return b->data != NULL ? b->data + b->off : "";
}

/*
 * Make room for n more bytes after the readable ones. Storage is allocated
 * even for n == 0 so that the data pointer is never NULL after a reserve
 * (NULL + 0 is undefined behaviour, and clang's UBSan reports it).
 */
static void buf_grow(struct buf *b, size_t n)
{
        size_t need, cap;

        if (n > SIZE_MAX - b->len)
                fatalx("buf_grow: %zu + %zu bytes", b->len, n);
        need = b->len + n;
        if (b->data != NULL && b->off + need <= b->cap)
                return;
        if (b->off > 0) {
                memmove(b->data, b->data + b->off, b->len);
                b->off = 0;
        }
        if (b->data != NULL && need <= b->cap)
                return;
        cap = b->cap ? b->cap : 256;
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
}

char *buf_reserve(struct buf *b, size_t n)
{
        char *p;

        buf_grow(b, n);
        p = b->data + b->off + b->len;
        b->len += n;
        return p;
}

void buf_unreserve(struct buf *b, size_t n)
{
        if (n > b->len)
                fatalx("buf_unreserve: %zu > %zu", n, b->len);
        b->len -= n;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
        const char *src = p;
        size_t rel = SIZE_MAX;
        char *dst;

        if (n == 0)
                return;
        /* p may point at b's own bytes, which reserving can move or free. */
        if (b->len > 0 && (uintptr_t)src >= (uintptr_t)buf_data(b) &&
            (uintptr_t)src < (uintptr_t)(buf_data(b) + b->len))
                rel = (size_t)(src - buf_data(b));
        dst = buf_reserve(b, n);
        if (rel != SIZE_MAX)
                src = buf_data(b) + rel;
        memcpy(dst, src, n);
}

void buf_appendf(struct buf *b, const char *fmt, ...)
{
        va_list ap;
        int n;
        char *p;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                fatalx("buf_appendf: bad format");
        p = buf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
        buf_unreserve(b, 1);
}

void buf_consume(struct buf *b, size_t n)
{
        if (n > b->len)
                fatalx("buf_consume: %zu > %zu", n, b->len);
        b->off += n;
        b->len -= n;
        if (b->len == 0)
                b->off = 0;
}

void buf_reset(struct buf *b)
{
        b->off = 0;
        b->len = 0;
}

void buf_shrink(struct buf *b)
{
        if (b->len == 0 && b->data != NULL) {
                free(b->data);
                buf_init(b);
        }
}
