/*
 * json: write JSON text into a caller's buffer, measuring as it goes (like
 * snprintf): o->len counts every byte wanted, also past o->size, so a writer
 * can run once into a stack buffer and, when that was too small, once more
 * into one of the size it now knows (alerts, TLS-RPT results). Nothing is
 * NUL-terminated here.
 */
#ifndef MAILWARD_JSON_H
#define MAILWARD_JSON_H

#include <stddef.h>

struct json_out {
        char *buf;
        size_t size;
        size_t len; /* bytes wanted so far, may exceed size */
};

void json_put(struct json_out *o, const char *s, size_t n);
void json_puts(struct json_out *o, const char *s);

/*
 * A JSON string. '"' and '\\' are escaped, control characters and DEL become
 * \u00XX. Peer data (domains, replies, reasons) is not known to be UTF-8, and
 * invalid UTF-8 would make the whole line invalid JSON, so every byte >= 0x80
 * is also written as \u00XX: the string reads as Latin-1, which is lossless
 * (a consumer gets each original byte back as one code point) and always
 * valid.
 */
void json_string(struct json_out *o, const char *s);

/* ,"key":"value" (nothing when value is NULL). */
void json_field(struct json_out *o, const char *key, const char *value);

#endif
