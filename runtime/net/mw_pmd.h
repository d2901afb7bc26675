/* mw_pmd: permessage-deflate negotiation (RFC 7692): reads a client's Sec-WebSocket-Extensions
 * offers and writes the answer. Pure functions (bytes in, header value out), tested without sockets. */
#ifndef MW_PMD_H
#define MW_PMD_H

#include <stddef.h>

#include "mw_http.h"

/* Room for the longest answer mw_pmd_negotiate writes, with its NUL. */
#define MW_PMD_RESPONSE_MAX 160

/* Picks the first acceptable permessage-deflate offer of one Sec-WebSocket-Extensions value (a
 * comma-separated list) and writes the value to answer it with into out (NUL-terminated):
 * "permessage-deflate; server_no_context_takeover; client_no_context_takeover", then
 * "; server_max_window_bits=15" when the offer asked for 15 and "; client_max_window_bits=N"
 * when the offer gave N. An offer is declined when it is invalid (an unknown, repeated or
 * malformed parameter, a window outside 8..15) or asks for server_max_window_bits below 15 (a
 * broadcast is compressed once, with one window, for every recipient). A syntax error ends the
 * list. Returns 1 when an offer was accepted, 0 when none was (out is then ""). */
int mw_pmd_negotiate(const char *value, size_t len, char out[MW_PMD_RESPONSE_MAX]);

/* The same over every Sec-WebSocket-Extensions header of a request, in order (several header
 * lines are one list). */
int mw_pmd_negotiate_request(const mw_http_request *r, char out[MW_PMD_RESPONSE_MAX]);

#endif
