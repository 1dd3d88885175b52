/* json: see json.h. */
#include "json.h"

#include <string.h>

void json_put(struct json_out *o, const char *s, size_t n)
{
        if (o->len < o->size)
                memcpy(o->buf + o->len, s, n <= o->size - o->len ? n : o->size - o->len);
        o->len += n;
}

void json_puts(struct json_out *o, const char *s)
{
        json_put(o, s, strlen(s));
}

void json_string(struct json_out *o, const char *s)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p;

        json_put(o, "\"", 1);
        for (p = (const unsigned char *)s; *p != '\0'; p++) {
                if (*p == '"' || *p == '\\') {
                        char esc[2] = {'\\', (char)*p};

                        json_put(o, esc, 2);
                } else if (*p < 0x20 || *p >= 0x7f) {
                        char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};

                        json_put(o, esc, 6);
                } else {
                        json_put(o, (const char *)p, 1);
                }
        }
        json_put(o, "\"", 1);
}

void json_field(struct json_out *o, const char *key, const char *value)
{
        if (value == NULL)
                return;
        json_put(o, ",\"", 2);
        json_puts(o, key);
        json_put(o, "\":", 2);
        json_string(o, value);
}
