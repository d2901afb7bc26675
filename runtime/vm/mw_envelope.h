/* mw_envelope: the envelope of a client's message in the wire protocol,
 * {"type":T,"action":A,"data":D,"requestId":ID}, decoded and checked in C: only data becomes a
 * Lua value (no table for the envelope, no Lua string of the text), and Lua is called with the
 * parts (hooks.on_request) or the reason it is refused (hooks.on_invalid). The refusals' texts
 * belong to lua/moonwire/frames.lua (envelope_error), indexed by these kinds. */
#ifndef MW_ENVELOPE_H
#define MW_ENVELOPE_H

#include <stddef.h>

struct lua_State;

enum {
    MW_ENVELOPE_OK = 0,
    MW_ENVELOPE_NOT_JSON = 1,   /* "Failed to parse JSON" (also a number beyond the double range, nesting too deep) */
    MW_ENVELOPE_NOT_OBJECT = 2, /* "Invalid WebSocket message": JSON, but not an object */
    MW_ENVELOPE_NO_TYPE = 3,    /* "Missing WebSocket message type": type is not a string */
    MW_ENVELOPE_NO_ACTION = 4,  /* "Missing WebSocket message action": action is not a string */
};

/* Decodes text[0..len) (nesting at most max_depth, the envelope counting as one level). On
 * MW_ENVELOPE_OK pushes type, action (strings), data (nil for JSON null or absent) and
 * requestId (a string or number as sent, nil for any other value or absent); otherwise pushes
 * nothing and returns the kind of refusal. [-0, +4 or +0] */
int mw_envelope_decode(struct lua_State *L, const char *text, size_t len, int max_depth);

/* Adds envelope(text, max_depth) -> kind, type, action, data, requestId to the table on top of
 * the stack (the wire module; the runtime's text path and the Lua tests use it). [-0, +0] */
void mw_envelope_add_functions(struct lua_State *L);

#endif
