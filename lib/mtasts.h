/*
 * mtasts: the pure parts of MTA-STS (RFC 8461): the "_mta-sts" TXT record
 * (3.1), the HTTP response that carries a policy (3.3), the policy body
 * (3.2), and matching certificate names against a policy's mx patterns
 * (4.1; also used for the policy host's own name, and by policy.c). No I/O: DNS lookups,
 * the HTTPS fetch, the cache and what to do when any of them fails belong to the caller.
 *
 * Everything handed in is peer data: it may hold any byte, nothing is read
 * past the length given, and bad input never aborts. Functions that can fail
 * return 0 (mtasts_txt_parse: 1 or 0) or -EINVAL and write a reason to err:
 * printable ASCII with peer bytes escaped as log_escape() does, fit for a log
 * line or an SMTP reply, cut to errlen (err may be NULL when errlen is 0).
 * Out of memory aborts (xmalloc). No state: call from any thread.
 *
 * Where the RFC leaves a choice, this module decides so:
 *
 * TXT record. Only records whose first bytes are exactly "v=STSv1;" count;
 * all others are discarded (3.1), so "v=stsv1;", "v=STSv10;", " v=STSv1;"
 * and "v=STSv1 ;" are not MTA-STS records (erratum 6285 makes the grammar
 * agree: no whitespace before the first ';'). After that prefix the published
 * grammar is followed: fields are name=value separated by *WSP ";" *WSP, and
 * an optional ';' may end the record. One leniency: trailing whitespace
 * without a ';' is taken as the end (a record that is invalid only by
 * that would otherwise count as no policy, and drop the enforcement that
 * its domain asked for). Field names are case-sensitive
 * (RFC 7405 %s): "id" is the id, "ID" an unknown extension. The id is
 * 1*32(ALPHA / DIGIT); it is required. Other fields must be valid extensions
 * (name: alphanumeric then up to 31 of alphanumeric "_-."; value: 1*(%x21-3A /
 * %x3C / %x3E-7E)) and are ignored. A repeated field counts only the first
 * time (3.2: "all entries except for the first SHOULD be ignored", which
 * covers both records and policies); a later "id" is checked as an extension.
 *
 * Policy body. The published grammar (3.2) with the erratum 6253 reading:
 * lines end in LF or CRLF, the last line may lack one. A line is
 * "name:" *WSP value *WSP; blank (empty or whitespace-only) lines are
 * skipped, for the same reason as above (the grammar has none); whitespace
 * before the name or before the ':' and a lone CR are errors, as are NUL bytes and bytes
 * that are not UTF-8 (RFC 3629) or are control characters inside a value. Field names and
 * the values of version and mode are case-sensitive ("Mode: Enforce" is an
 * unknown field, then a missing mode; the reason names the line that has it
 * in another case). version must be "STSv1"; mode "enforce", "testing" or
 * "none"; max_age 1 to 10 digits (the ABNF's 1*10DIGIT) and a value above
 * MTASTS_MAX_AGE_MAX is clamped to it, not refused: the text says caching
 * for longer is wrong, not that the policy is void, and refusing would drop
 * enforcement a domain asked for. Every "mx" line adds a pattern; other
 * repeated fields count the first time only, later ones are ignored whatever
 * their value. Unknown fields are checked as extensions and ignored. mx is
 * required unless mode is none; mx lines with mode none are still checked and
 * kept.
 *
 * Names. An mx pattern is a host name or "*." and a host name; a host name is
 * labels of letters, digits and '-' (RFC 5321 Domain: not starting or ending
 * with '-'), 1 to 63 each, at most 253 in all. One trailing dot is accepted
 * and removed; patterns are stored in lower case. Matching is ASCII
 * case-insensitive; "*." matches exactly one whole left-most label.
 *
 * HTTP. mtasts_http_parse() takes one whole response as read until the server
 * closed; it never follows redirects (3.3: "MUST NOT"), needs status 200,
 * media type text/plain (3.2: senders SHOULD check it), refuses bodies over
 * MTASTS_BODY_MAX (3.3), and a body whose end nothing authenticates (no
 * Content-Length, no close_notify): the policy's integrity is the HTTPS
 * fetch's, and a policy cut after "max_age: 6" would be cached for a minute.
 */
#ifndef MAILWARD_MTASTS_H
#define MAILWARD_MTASTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MTASTS_ID_MAX      32       /* id: 1*32 ALPHA/DIGIT */
#define MTASTS_MAX_AGE_MAX 31557600 /* RFC 8461's max_age limit; larger is clamped */
#define MTASTS_BODY_MAX    65536    /* bytes of a policy body taken at most */
#define MTASTS_MX_MAX      64       /* mx: lines kept at most; more is an error */
#define MTASTS_HEADER_MAX  16384    /* bytes of an HTTP status line and headers */

enum mtasts_mode {
        MTASTS_MODE_NONE,
        MTASTS_MODE_TESTING,
        MTASTS_MODE_ENFORCE,
};

/* "none", "testing", "enforce"; "invalid" for anything else. */
const char *mtasts_mode_str(enum mtasts_mode m);

/*
 * The TXT records found at _mta-sts.DOMAIN: recs[i] is lens[i] bytes, the
 * concatenation of one record's character-strings (not NUL-terminated; any
 * byte). Returns 1 with id set (NUL-terminated) when exactly one record
 * begins with "v=STSv1;" and it is valid; 0 when none does (the domain has
 * no policy; err says so); -EINVAL when more than one does or the one that
 * does is invalid (RFC 8461: then act as if there were no policy), with the
 * reason in err. id is "" unless 1 is returned.
 */
int mtasts_txt_parse(const char *const *recs, const size_t *lens, size_t n,
                     char id[MTASTS_ID_MAX + 1], char *err, size_t errlen);

/* A parsed policy. Zero-initialise or fill with mtasts_policy_parse(). */
struct mtasts_policy {
        enum mtasts_mode mode;
        uint32_t max_age; /* seconds, at most MTASTS_MAX_AGE_MAX */
        size_t nmx;
        /* patterns, lower case, no trailing dot: "mx.example.net", "*.example.net";
         * NULL when nmx is 0 */
        char **mx;
};

/*
 * Parse a policy body of len bytes (at most MTASTS_BODY_MAX). 0 with *out
 * filled (release it with mtasts_policy_cleanup()), or -EINVAL with *out
 * zeroed and a reason such as "line 3: bad max_age \"12x\" (1 to 10 digits)"
 * in err. *out is overwritten, not cleaned up first.
 */
int mtasts_policy_parse(const char *text, size_t len, struct mtasts_policy *out,
                        char *err, size_t errlen);

/* Frees the patterns and zeroes *p; p itself is the caller's. p may be NULL. */
void mtasts_policy_cleanup(struct mtasts_policy *p);

/*
 * Could certificate name certname (a SAN dNSName, possibly "*.example.net")
 * name a host that the mx pattern allows? For when the MX host name is not
 * known (a transparent proxy knows only the IP; an exact pattern is then an
 * exact host name, as for the policy host): true when the set of host
 * names certname covers (RFC 6125: "*." is exactly one whole left-most label)
 * and the set pattern covers intersect:
 *
 *     certname          pattern           result
 *     mx1.example.net   *.example.net     true
 *     *.example.net     mx1.example.net   true
 *     *.example.net     *.example.net     true
 *     a.b.example.net   *.example.net     false
 *     example.net       *.example.net     false
 *     *.other.net       *.example.net     false
 *
 * Case-insensitive, trailing dots ignored. A certname with '*' anywhere else
 * ("m*.example.net", "a.*.example.net") or a wildcard over a single label
 * ("*.net") never matches; neither does anything that is not a host name.
 */
bool mtasts_name_allowed(const char *certname, const char *pattern);

/*
 * Parse one whole HTTP/1.0 or HTTP/1.1 response of len bytes (everything read
 * until the server closed). Succeeds only for status 200, one Content-Type
 * whose media type is text/plain (parameters ignored, case-insensitive), no
 * Transfer-Encoding other than "identity", a body of at most MTASTS_BODY_MAX
 * bytes and, when Content-Length is present, of exactly that length. The
 * headers end at an empty line (CRLF or LF line ends) within the first
 * MTASTS_HEADER_MAX bytes. 0 with *body (pointing into buf) and *body_len
 * set, or -EINVAL with *body NULL, *body_len 0 and a reason such as
 * "HTTP status 404", "HTTP status 301: redirects are not followed",
 * "Content-Type text/html", "truncated body (10 of 20 bytes)", "no header end".
 *
 * close_notify: the server ended its TLS session with a close_notify. Without
 * Content-Length the body ends where the connection does, and only that
 * alert says it was not cut short on the path (a TCP FIN is not
 * authenticated; RFC 9112 section 9.8): without either the response is
 * refused ("no Content-Length and no TLS close_notify: ...").
 */
int mtasts_http_parse(const char *buf, size_t len, bool close_notify, const char **body,
                      size_t *body_len, char *err, size_t errlen);

#endif
